"""Receiving one client message under the server-wide byte budget.

websockets would assemble each message whole before handing it over, so three clients
sending 500 MiB at once took the server to 3 GB before any check ran (issue 17). Here a message
is read fragment by fragment: every fragment takes its bytes from the shared
:class:`~.limits.ByteBudget` first, a message past ``max_message_bytes`` stops being kept as
soon as it crosses the limit, and a message that finds no room within ``inflight_wait`` is
refused with ``server_busy`` (its rest is read and dropped). The transport's own caps bound
what is buffered beneath: ``max_frame_bytes`` per frame, a few frames per connection.
An accepted job's bytes stay taken until the job ends (:class:`Holds`).

A message of more than one fragment is gathered in its own anonymous memory map
(:class:`Gathered`), never in the heap: the map reserves ``max_message_bytes`` of address
space, the kernel backs only the pages written, growing copies nothing, and dropping the
message gives its memory back to the system at once. A ``bytearray`` grown by ``+=`` (the
first implementation) moved through the heap until it passed glibc's mmap threshold — one
copy, and freed chunks that stayed resident — so the same three messages left the server
128–161 MiB larger (one CI run failed on it) instead of one budget's worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import mmap
import weakref
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

from ..protocol import Error, ErrorCode, Limits
from ..protocol.codec import message_id
from .config import MIB
from .resources import ByteBudget


@dataclass
class Incoming:
    """One message as received: its bytes, or the error to answer instead."""

    data: bytes | memoryview | None
    held: int  # bytes taken from the budget; give them back when done with ``data``
    refusal: Error | None = None


async def receive(
    ws: ServerConnection, budget: ByteBudget, limits: Limits, wait: float
) -> Incoming:
    """Read the next message. Raises ``ConnectionClosed`` (nothing held) when the peer goes."""
    buffer: bytes | Gathered | None = None
    size = held = 0
    refusal: Error | None = None
    text = started = False
    try:
        async for fragment in ws.recv_streaming():
            if not started:
                started, text = True, isinstance(fragment, str)
            size += len(fragment)
            if text or refusal is not None:
                continue  # read to the end of the message, keep nothing
            if size > limits.max_message_bytes:  # named by its job id, read from its start
                refusal = _too_large(limits, message_id(_start(buffer, fragment)))
            elif not await budget.take(len(fragment), wait):
                refusal = _busy(budget, wait, message_id(_start(buffer, fragment)))
            if refusal is not None:
                buffer = None
                budget.give(held)
                held = 0
                continue
            assert isinstance(fragment, bytes)
            held += len(fragment)
            if buffer is None:
                buffer = fragment  # one fragment (every small message): kept as it came
            else:
                if isinstance(buffer, bytes):
                    buffer = Gathered(limits.max_message_bytes, buffer)
                buffer.add(fragment)
    except BaseException:
        budget.give(held)
        raise
    if text:
        refusal = Error(ErrorCode.BAD_FRAME, "send binary msgpack messages, not text frames")
    if refusal is not None:
        return Incoming(None, 0, refusal)
    if isinstance(buffer, Gathered):
        return Incoming(buffer.view(), held)
    return Incoming(buffer if buffer is not None else b"", held)


class Gathered:
    """One message's fragments, end to end in an anonymous private map of ``capacity``
    bytes (the message limit: address space only; the pages written are what it costs).
    The map is unmapped when the last view of it — the message's arrays — goes."""

    def __init__(self, capacity: int, first: bytes) -> None:
        flags = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
        self._map = mmap.mmap(-1, max(capacity, 1), **flags)  # type: ignore[arg-type]
        self.size = 0
        self.add(first)

    def add(self, fragment: bytes) -> None:
        end = self.size + len(fragment)
        self._map[self.size : end] = fragment
        self.size = end

    def view(self) -> memoryview:
        return memoryview(self._map)[: self.size]


def _start(buffer: bytes | Gathered | None, fragment: bytes | str) -> bytes | memoryview | str:
    """The first bytes of the message, to read its job id from."""
    if buffer is None:
        return fragment
    return buffer.view() if isinstance(buffer, Gathered) else buffer


class Holds:
    """Accepted jobs' message bytes, kept from the budget until the job ends: the job's arrays
    view those bytes, so giving them back earlier would let the server hold more than its
    budget. Everything else goes back as soon as it is routed."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self._held: dict[tuple[str, str], tuple[int, int]] = {}  # key: (this hold's number, bytes)
        self._numbers = itertools.count()

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._held

    def keep(self, key: tuple[str, str], message: object, held: int) -> None:
        """Hold ``held`` bytes for the job ``key`` until :meth:`free`, or until ``message`` is
        freed, whichever comes first."""
        number = next(self._numbers)
        self._held[key] = (number, held)
        # Safety net: the bytes come back when the job's message is freed, even if its end
        # never passed through free() (from any thread, so via the loop).
        loop = asyncio.get_running_loop()
        weakref.finalize(message, self._free_soon, loop, key, number)

    def _free_soon(
        self, loop: asyncio.AbstractEventLoop, key: tuple[str, str], number: int
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: so is the budget
            loop.call_soon_threadsafe(self.free, key, number)

    def free(self, key: tuple[str, str], number: int | None = None) -> None:
        """An accepted job's message bytes back to the budget, once (``number``: only if the
        hold is still that one)."""
        hold = self._held.get(key)
        if hold is not None and number in (None, hold[0]):
            del self._held[key]
            self.budget.give(hold[1])


def _too_large(limits: Limits, job_id: str | None) -> Error:
    return Error(
        ErrorCode.FRAME_TOO_LARGE,
        f"message exceeds max_message_bytes {limits.max_message_bytes}; send smaller images",
        id=job_id,
    )


def _busy(budget: ByteBudget, wait: float, job_id: str | None) -> Error:
    return Error(
        ErrorCode.SERVER_BUSY,
        f"the server is holding {budget.used // MIB} MiB of other clients' messages (its "
        f"budget is {budget.capacity // MIB} MiB) and found no room for this one within "
        f"{wait:g} s; send it again in a few seconds",
        id=job_id,
    )
