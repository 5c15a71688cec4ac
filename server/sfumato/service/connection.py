"""One websocket connection's life on the server: its session and bounded outbox, closing it
from the server's side, the socket gate before the handshake, and the watchdog that drops
connections that never said hello or stopped reading.

The server (server.py) owns the set of connections; this module owns what happens to each.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..protocol import Error, ErrorCode, ServerMessage, ServerSession, State
from .config import Resources
from .outbox import Outbox
from .resources import SocketGate

log = logging.getLogger("sfumato.server")
CLOSE_GRACE = 2.0  # seconds a close frame may take to leave before the socket is cut
FRAMES_QUEUED = 4  # frames websockets buffers per connection before it stops reading the socket
_background: set[asyncio.Task[None]] = set()  # closes under way (a task must be referenced)


@dataclass(eq=False)
class Connection:
    """One websocket: its session, its bounded outbox (outbox.py) and, once it said hello,
    the identity it speaks for."""

    ws: ServerConnection
    number: int
    session: ServerSession
    outbox: Outbox
    owner: str = ""
    opened: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    closing: str = ""  # why the server is closing it; nothing more is sent once set

    def post(self, message: ServerMessage) -> None:
        if self.closing:
            return
        if not self.outbox.post(message):
            self.shut(
                1008,
                f"reading too slowly: {self.outbox.bytes // (1024 * 1024)} MiB of messages unsent "
                "(resources.outbox_bytes, outbox_total_bytes); reconnect and fetch results by id",
            )

    def shut(
        self, code: int, reason: str, *, farewell: Error | None = None, abort: bool = False
    ) -> None:
        """Close from the server's side, once, with a reason for the client and the log.
        ``farewell`` is sent first (what was queued before it too); else unsent messages are
        dropped (results stay in the store for ``fetch``)."""
        if self.closing:
            return
        self.closing = reason
        log.info("connection %d: closing: %s", self.number, reason)
        if abort:
            self.outbox.close()
            self.ws.transport.abort()
            return
        if farewell is None:
            self.outbox.close()
        else:
            self.outbox.post(farewell)
        task = asyncio.create_task(self._close(code, reason))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def flush(self, timeout: float = CLOSE_GRACE) -> None:
        """Let queued messages out (an error before a close, say) before the socket goes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.outbox.empty() and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def _close(self, code: int, reason: str) -> None:
        await self.flush()
        self.outbox.close()
        try:
            await asyncio.wait_for(self.ws.close(code, reason[:120]), CLOSE_GRACE)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        finally:
            self.ws.transport.abort()  # a peer that reads nothing never acknowledges the close


def gated(gate: SocketGate) -> type[ServerConnection]:
    """A ServerConnection that counts its socket from the moment it is accepted and closes it
    at once when the gate is full, so a flood of sockets never exhausts descriptors."""

    class GatedConnection(ServerConnection):
        admitted = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.admitted = gate.admit()
            if not self.admitted:
                self.transport.abort()  # the Transport websockets keeps (BaseTransport has none)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.admitted:
                self.admitted = False
                gate.release()
            super().connection_lost(exc)

    return GatedConnection


def quiet_exceptions(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """asyncio's default handler, minus the traceback for running out of descriptors on
    accept (asyncio retries the accept itself a second later): one line, which the log's
    RepeatFilter then collapses (logguard.py)."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        log.error(
            "out of file descriptors (%s): new connections wait until some close; "
            "lower resources.max_connections or raise ulimit -n",
            context.get("message", "accept"),
        )
        return
    loop.default_exception_handler(context)


async def watch(connections: set[Connection], resources: Resources) -> None:
    """Close connections that never said hello, and drop peers that stopped reading: a
    blocked socket also blocks websockets' keepalive ping, so it never times out alone."""
    tick = min(0.5, resources.hello_timeout / 4, resources.send_timeout / 4)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(max(tick, 0.02))
        now = loop.time()
        for conn in list(connections):
            if conn.closing:
                continue
            if (
                conn.session.state is State.AWAITING_HELLO
                and now - conn.opened > resources.hello_timeout
            ):
                text = (
                    f"no hello within {resources.hello_timeout:g} s "
                    "(resources.hello_timeout); send hello first when you connect"
                )
                conn.shut(
                    1008,
                    f"no hello within {resources.hello_timeout:g} s",
                    farewell=Error(ErrorCode.HELLO_TIMEOUT, text),
                )
            elif conn.outbox.stalled(now, resources.send_timeout):
                conn.shut(
                    1008,
                    f"the client read nothing for {resources.send_timeout:g} s "
                    "(resources.send_timeout)",
                    abort=True,
                )
