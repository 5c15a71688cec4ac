"""The websocket transport: moves bytes between connections and the sans-I/O protocol, and
routes typed messages to the queue, the worker and the result store.

One connection = one :class:`Connection` with its own :class:`ServerSession` and an outbox
drained by a writer task, so a slow client never blocks the worker or another client.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import uuid
import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from .. import __version__
from ..protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Cancel,
    Cancelled,
    ClientMessage,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    ListModels,
    Models,
    Progress,
    ProtocolError,
    Result,
    ServerMessage,
    ServerSession,
    State,
    Welcome,
)
from ..protocol.text import loggable
from ..provenance import load_identity
from ..registry import Registry
from . import logguard, retention
from .admission import Refusal, admit
from .config import ServerConfig
from .fair_queue import FairQueue, JobEntry
from .intake import receive
from .journal import Journal, recover
from .outbox import Outbox, Pool
from .resources import ByteBudget, SocketGate, ensure_descriptors, return_big_buffers
from .store import ResultStore, StoreError, owner_key
from .worker import Worker

log = logging.getLogger("sfumato.server")
CAPABILITIES = (
    "generate", "refine", "inpaint", "variants", "cancel", "fetch",
    "control", "lora", "tile", "preview", "outpaint", "upscale",
)  # fmt: skip
TERMINAL = (Result, Error, Cancelled)  # the one event that ends an accepted job
CLOSE_GRACE = 2.0  # seconds a close frame may take to leave before the socket is cut
SUSPENDED = "suspended"  # progress stage: the server stops; the job runs after the restart


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

    async def _close(self, code: int, reason: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_GRACE
        while not self.outbox.empty() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.outbox.close()
        try:
            await asyncio.wait_for(self.ws.close(code, reason[:120]), CLOSE_GRACE)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        finally:
            self.ws.transport.abort()  # a peer that reads nothing never acknowledges the close


_background: set[asyncio.Task[None]] = set()
FRAMES_QUEUED = 4  # frames websockets buffers per connection before it stops reading the socket


def _gated(gate: SocketGate) -> type[ServerConnection]:
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


def _quiet_exceptions(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
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


class SfumatoServer:
    def __init__(self, config: ServerConfig, registry: Registry | None = None) -> None:
        config.check()
        self.config = config
        self.registry = registry or Registry.load(config.registry)
        self.default_model = config.model or self.registry.default
        self.registry.get(self.default_model)  # fail at start, not at the first job
        self.store = ResultStore(config.results, config.png_compression)
        self.journal = Journal(config.results)  # accepted jobs, kept until they end
        self._keeping: set[tuple[str, str]] = set()  # jobs being journaled, not yet accepted
        self._worker_restarts = 0
        self._worker_dead = ""  # why the worker stopped for good ("" while it runs)
        self.queue = FairQueue()
        resources = config.resources
        self.budget = ByteBudget(resources.inflight_bytes)  # client messages held at once
        self.gate = SocketGate(resources.max_connections)
        self.outboxes = Pool(resources.outbox_total_bytes)  # unsent bytes of all connections
        self._connections: set[Connection] = set()
        # accepted jobs' message bytes, by key: (a number for this hold, bytes)
        self._held: dict[tuple[str, str], tuple[int, int]] = {}
        self._holds = itertools.count()
        self._owners: dict[str, set[Connection]] = defaultdict(set)
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.worker: Worker | None = None

    @property
    def tiny(self) -> bool:
        return self.registry.get(self.default_model).tiny

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        resources = self.config.resources
        logguard.install(resources.log_repeat_window)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_exceptions)
        ensure_descriptors(resources.max_connections)
        return_big_buffers()
        identity = None
        if self.config.credentials:
            identity = load_identity(
                self.config.signing_cert, self.config.signing_key, self.config.results / ".signing"
            )
            if identity.development:
                log.warning(
                    "signing content credentials with a local development identity: they "
                    "validate but are untrusted; configure signing_cert/signing_key for production"
                )
        for entry in await asyncio.to_thread(
            recover, self.journal, self.store, self.registry, self.default_model, self.config.limits
        ):  # jobs accepted before a restart that did not end: they run first, in order
            self.queue.push(entry)
        self.worker = Worker(
            self.config, self.registry, self.store, self.queue, self._notify, identity, self.journal
        )
        self._start_worker()
        if self.config.preload:
            self._tasks.append(asyncio.create_task(self.worker.preload(self.default_model)))
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            origins=[
                None,
                *(Origin(o) for o in self.config.allowed_origins),
            ],  # browsers always send Origin
            compression=None,  # images do not compress, and deflate costs seconds on big passes
            # past the first: close 1009 unread; each frame is buffered whole before we see it
            max_size=(2 * self.config.limits.max_message_bytes, resources.max_frame_bytes),
            max_queue=FRAMES_QUEUED,
            ping_interval=resources.ping_interval,
            ping_timeout=resources.ping_timeout,
            server_header=f"sfumato/{__version__}",
            create_connection=_gated(self.gate),
        )
        self._tasks.append(asyncio.create_task(self._watch(), name="sfumato-watchdog"))
        self._tasks.append(asyncio.create_task(self._prune_forever(), name="sfumato-retention"))
        if self.tiny:
            log.warning(
                "serving %s, the built-in tiny model: random weights, images are noise",
                self.default_model,
            )

    def _start_worker(self) -> None:
        """Run the worker and watch it: a worker that stops is restarted (a few times), then
        the server says it is not ready and refuses jobs — it never goes unnoticed."""
        assert self.worker is not None
        task = asyncio.create_task(self.worker.run(), name="sfumato-worker")
        task.add_done_callback(self._worker_stopped)
        self._tasks.append(task)

    def _worker_stopped(self, task: asyncio.Task[None]) -> None:
        assert self.worker is not None
        if task.cancelled() or self.worker.stopping:
            return
        log.critical("the job worker stopped", exc_info=task.exception())
        self._worker_restarts += 1
        if self._worker_restarts <= 3:
            self._start_worker()
            self.worker.kick()
        else:
            self._worker_dead = (
                "the server's job worker stopped (the server log says why); restart the server"
            )

    async def close(self) -> None:
        """Stop gracefully (SIGTERM): take no new connections; let the running job finish
        within ``shutdown_grace`` seconds, else interrupt it. Unfinished jobs stay journaled
        and run again after the restart; each one's owner hears one ``progress`` with stage
        ``suspended``, then every connection closes with 1012 (service restart)."""
        if self._server is not None:
            self._server.close(close_connections=False)  # stop listening
        if self.worker is not None:
            for entry in await self.worker.stop(self.config.shutdown_grace):
                self._notify(entry.owner, Progress(entry.job.id, 0, 0, stage=SUSPENDED))
            self.worker.shutdown()
        reason = "server restarting: unfinished jobs are kept; reconnect and fetch them"
        await asyncio.gather(
            *(self._goodbye(conn, reason) for conns in self._owners.values() for conn in conns)
        )
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _goodbye(self, conn: Connection, reason: str) -> None:
        await self._flush(conn)
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
            await asyncio.wait_for(conn.ws.close(1012, reason), CLOSE_GRACE)

    async def _watch(self) -> None:
        """Close connections that never said hello, and drop peers that stopped reading: a
        blocked socket also blocks websockets' keepalive ping, so it never times out alone."""
        resources = self.config.resources
        tick = min(0.5, resources.hello_timeout / 4, resources.send_timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(tick, 0.02))
            now = loop.time()
            for conn in list(self._connections):
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

    async def _prune_forever(self) -> None:
        """Apply the retention policy at start and every few minutes (retention.py)."""
        resources = self.config.resources
        if not (resources.retention_days or resources.retention_bytes):
            return
        while True:
            await self.prune()
            await asyncio.sleep(retention.PRUNE_INTERVAL)

    async def prune(self) -> retention.Pruned:
        resources = self.config.resources
        busy = {entry.key for entry in self.queue.order()}
        if self.queue.running is not None:
            busy.add(self.queue.running.key)
        try:
            pruned = await asyncio.to_thread(
                retention.prune,
                self.store.root,
                resources.retention_days * 86400,
                resources.retention_bytes,
                busy,
            )
        except OSError as exc:
            log.warning("retention: pruning the result store failed: %s", exc)
            return retention.Pruned(0, 0, 0, 0, 0)
        if pruned.results or pruned.records:
            log.info(
                "retention: pruned %d results (%d bytes) and %d records; %d results (%d bytes) kept",
                pruned.results, pruned.bytes, pruned.records, pruned.kept, pruned.kept_bytes,
            )  # fmt: skip
        return pruned

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        resources = self.config.resources
        conn = Connection(
            ws,
            next(self._numbers),
            ServerSession(self.config.limits, self.config.token),
            Outbox(resources.outbox_bytes, self.outboxes, self.config.limits.max_message_bytes),
        )
        writer = asyncio.create_task(conn.outbox.write_loop(ws))
        if len(self._connections) >= resources.max_connections:
            text = (
                f"the server already serves {resources.max_connections} connections "
                "(resources.max_connections); connect again later, or close idle clients"
            )
            conn.shut(
                1013, "too many connections", farewell=Error(ErrorCode.TOO_MANY_CONNECTIONS, text)
            )
            await ws.wait_closed()
            writer.cancel()
            return
        self._connections.add(conn)
        try:
            while not conn.closing:
                incoming = await receive(
                    ws, self.budget, self.config.limits, resources.inflight_wait
                )
                if incoming.refusal is not None:
                    conn.post(incoming.refusal)
                    continue
                assert incoming.data is not None
                try:
                    await self._receive(conn, incoming.data, incoming.held)
                finally:
                    incoming.data = None
                if conn.session.state is State.CLOSED:  # unauthorized: the error, then close
                    await self._flush(conn)
                    await ws.close(1008, "unauthorized")
                    return
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(conn)
            self._owners[conn.owner].discard(conn)
            if not self._owners[conn.owner]:
                del self._owners[conn.owner]
            writer.cancel()

    async def _receive(self, conn: Connection, data: bytes | bytearray, held: int) -> None:
        """Decode and route one message; its bytes go back to the budget now, or, for an
        accepted job (whose arrays view them), when the job ends (:meth:`_notify`)."""
        try:
            message = conn.session.receive(data)
        except ProtocolError as exc:
            self.budget.give(held)
            conn.post(Error(exc.code, exc.message, id=exc.id, field=exc.field))
            return
        try:
            await self._dispatch(conn, message)
        finally:
            entry = self.queue.find(conn.owner, message.id) if isinstance(message, Job) else None
            if entry is not None and entry.job is message and entry.key not in self._held:
                number = next(self._holds)
                self._held[entry.key] = (number, held)
                # Safety net: the bytes come back when the job's message is freed, even if
                # its end never passed through _notify (from any thread, so via the loop).
                loop = asyncio.get_running_loop()
                weakref.finalize(message, self._free_soon, loop, entry.key, number)
            else:
                self.budget.give(held)

    async def _flush(self, conn: Connection, timeout: float = 2.0) -> None:
        """Let queued messages out (an error before a close, say) before the socket goes."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not conn.outbox.empty() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    def _free_soon(
        self, loop: asyncio.AbstractEventLoop, key: tuple[str, str], number: int
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is the budget
            loop.call_soon_threadsafe(self._free, key, number)

    def _free(self, key: tuple[str, str], number: int | None = None) -> None:
        """An accepted job's message bytes back to the budget, once (``number``: only if the
        hold is still that one)."""
        hold = self._held.get(key)
        if hold is not None and number in (None, hold[0]):
            del self._held[key]
            self.budget.give(hold[1])

    def _notify(self, owner: str, message: ServerMessage) -> None:
        if isinstance(message, TERMINAL) and message.id is not None:
            self._free((owner, message.id))
        for conn in self._owners.get(owner, ()):
            conn.post(message)

    # ------------------------------------------------------------------ messages

    async def _dispatch(self, conn: Connection, message: ClientMessage) -> None:
        """One message at a time per connection: a job is journaled before the next message
        of its connection (a cancel of it, say) is read."""
        if isinstance(message, Hello):
            self._hello(conn, message)
        elif isinstance(message, Job):
            await self._submit(conn, message)
        elif isinstance(message, Cancel):
            await self._cancel(conn, message)
        elif isinstance(message, Fetch) and not self._fetch_pending(conn, message):
            task = asyncio.create_task(self._fetch(conn, message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message, ListModels):
            conn.post(Models(self.registry.infos(), self.default_model))

    def _hello(self, conn: Connection, hello: Hello) -> None:
        client_id = hello.client_id or uuid.uuid4().hex
        conn.owner = owner_key(self.config.token, client_id)
        self._owners[conn.owner].add(conn)
        # client text, escaped: a newline or escape sequence in it never forges a log line
        log.info(
            "connection %d: %s %s", conn.number, loggable(hello.client), loggable(hello.version)
        )
        status = self._worker_dead or (self.worker.problem if self.worker is not None else "")
        notice = ""
        if self.tiny:
            notice = (
                f"Serving {self.default_model}, the built-in tiny model: random weights, so images "
                "are noise. Configure a real model in the registry (see docs/quickstart.md)."
            )
        conn.post(
            Welcome(
                server=__version__,
                protocol=PROTOCOL_VERSION,
                capabilities=CAPABILITIES,
                models=self.registry.infos(),
                default_model=self.default_model,
                limits=self.config.limits,
                client_id=client_id,
                notice=notice,
                ready=not status,
                status=status,
            )
        )

    async def _submit(self, conn: Connection, job: Job) -> None:
        def refuse(code: ErrorCode, text: str, field: str | None = None) -> None:
            conn.post(Error(code, text, id=job.id, field=field))

        try:
            sendable = self.config.limits.max_message_bytes  # the result must fit one message
            model = admit(job, self.registry, self.default_model, sendable).name
        except Refusal as refusal:
            return refuse(refusal.code, refusal.message, refusal.field)
        limit = self.config.limits.max_queued_jobs
        if self.queue.load(conn.owner) >= limit:  # per identity, over all its connections
            return refuse(
                ErrorCode.QUEUE_FULL,
                f"this client (token and client_id) already has {limit} jobs queued or running "
                "over its connections (max_queued_jobs); wait for one to finish or cancel one",
            )
        key = (conn.owner, job.id)
        if (
            key in self._keeping
            or self.queue.find(*key) is not None
            or self.store.exists(*key)
        ):
            return refuse(
                ErrorCode.DUPLICATE_ID, f"job id {job.id!r} is already used; pick a new id", "id"
            )
        if self._worker_dead:
            return refuse(ErrorCode.ENGINE_UNAVAILABLE, self._worker_dead)
        self._keeping.add(key)
        try:  # accepted means kept: journaled durably before the client hears `accepted`
            await asyncio.to_thread(self._keep, conn.owner, job, model)
        except StoreError as exc:
            log.error("job %s refused: %s", job.id, exc)
            return refuse(ErrorCode.STORE_FAILED, str(exc))
        finally:
            self._keeping.discard(key)
        position = self.queue.push(JobEntry(job, conn.owner, conn.number, model))
        conn.post(Accepted(job.id, position))
        assert self.worker is not None
        if self.worker.stopping:  # accepted during a stop: it runs after the restart
            conn.post(Progress(job.id, 0, 0, stage=SUSPENDED))
        self.worker.kick()

    def _keep(self, owner: str, job: Job, model: str) -> None:
        self.store.forget_end(owner, job.id)  # an id used again after an error or cancel
        self.journal.write(owner, job, model)

    async def _cancel(self, conn: Connection, cancel: Cancel) -> None:
        entry = self.queue.find(conn.owner, cancel.id)
        if entry is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no queued or running job {cancel.id!r}; it may have finished (fetch it)",
                    id=cancel.id,
                    field="id",
                )
            )
        elif self.queue.remove(entry):
            assert self.worker is not None
            await self.worker.end(entry, Cancelled(cancel.id))  # recorded, then sent
        else:
            entry.cancel.set()  # running: the engine stops at its next step

    def _fetch_pending(self, conn: Connection, fetch: Fetch) -> bool:
        """A queued or running job answers ``accepted`` at once, before the event loop can
        deliver any later event of it: the client sees ``accepted`` before the ``progress``
        and the end that follow (protocol.md 4.4)."""
        pending = self.queue.find(conn.owner, fetch.id)
        if pending is None:
            return False
        order = self.queue.order()
        running = self.queue.running is not None
        position = order.index(pending) + running if pending in order else 0
        conn.post(Accepted(fetch.id, position))
        return True

    async def _fetch(self, conn: Connection, fetch: Fetch) -> None:
        try:
            ended: ServerMessage | None = await asyncio.to_thread(
                self.store.read, conn.owner, fetch.id
            )
            if ended is None:
                ended = await asyncio.to_thread(self.store.ended, conn.owner, fetch.id)
        except StoreError as exc:  # a damaged result: say so, never leave the fetch unanswered
            log.error("fetch %s: %s", fetch.id, exc)
            conn.post(Error(ErrorCode.STORE_FAILED, str(exc), id=fetch.id))
            return
        except Exception as exc:
            log.exception("fetch %s failed", fetch.id)
            text = f"the server failed reading job {fetch.id!r} ({type(exc).__name__}); report it"
            conn.post(Error(ErrorCode.INTERNAL, text, id=fetch.id))
            return
        if ended is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no result {fetch.id!r} for this client; results are kept per token and "
                    "client_id, so reconnect with the client_id the server welcomed you with",
                    id=fetch.id,
                    field="id",
                )
            )
        else:  # the result, or how the job ended without one (error, cancelled, interrupted)
            conn.post(ended)
