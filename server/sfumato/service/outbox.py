"""One connection's outgoing messages, bounded in bytes, and the writer that drains them.

A client that submits jobs and never reads used to grow the server without end: every result
waited in an unbounded queue behind a socket that never drained (issue 17, ~9 MB/s). Now a
connection's unsent messages may take ``outbox_bytes`` (and all of them together
``outbox_total_bytes``); past that the connection is closed with a reason — its results stay in the result store, so it can reconnect and ``fetch`` them.
Progress events are droppable (the next one supersedes them); results and errors are not.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..protocol import Error, ErrorCode, Progress, Result, ServerMessage, encode, fragments

log = logging.getLogger("sfumato.server")
PROGRESS_BACKLOG = 64  # past this many queued messages a stalled client's progress is dropped
MIB = 1024 * 1024


def too_large(result: Result, size: int, limit: int) -> Error:
    """The error that replaces a result too large to send (the result stays in the store)."""
    return Error(
        ErrorCode.RESULT_TOO_LARGE,
        f"the result of job {result.id!r} is {size / MIB:.1f} MiB, more than the "
        f"{limit / MIB:.1f} MiB this server sends in one message (limits.max_message_bytes); "
        "run it again with fewer variants, a smaller size or params.files off",
        id=result.id,
        field="params.variants",
    )


@dataclass
class _Item:
    message: ServerMessage
    chunks: list[memoryview]
    size: int


class Pool:
    """Unsent bytes of every outbox together (``outbox_total_bytes``): many slow clients at
    once cannot add up to more than this, whatever each one's own allowance."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0


class Outbox:
    def __init__(
        self, budget: int, pool: Pool | None = None, max_message: int | None = None
    ) -> None:
        self.budget = budget
        self.pool = pool or Pool(budget)
        self.max_message = max_message  # limits.max_message_bytes: what the client will decode
        self.bytes = 0  # queued plus the message being sent
        self.closed = False
        self.dropped_progress = 0
        self.sending_since: float | None = None  # loop time of the last fragment's progress
        self._items: deque[_Item] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def post(self, message: ServerMessage) -> bool:
        """Queue a message. False when it does not fit: the caller must close the connection
        (one message alone always fits, however big, so a reading client gets every result)."""
        if self.closed:
            return True
        chunks = encode(message)
        size = sum(chunk.nbytes for chunk in chunks)
        if isinstance(message, Result) and self.max_message and size > self.max_message:
            # Admission's bound should have refused this job; if a result still outgrows the
            # announced limit, the client hears why its job ended instead of waiting forever.
            message = too_large(message, size, self.max_message)
            log.warning("%s", message.message)
            chunks = encode(message)
            size = sum(chunk.nbytes for chunk in chunks)
        over = self.bytes > 0 and (
            self.bytes + size > self.budget or self.pool.used + size > self.pool.capacity
        )
        if isinstance(message, Progress):
            if over or len(self._items) > PROGRESS_BACKLOG:
                self.dropped_progress += 1
                return True
        elif over:
            return False
        self._items.append(_Item(message, chunks, size))
        self._grow(size)
        self._ready.set()
        return True

    def empty(self) -> bool:
        return not self._items and self.sending_since is None

    def close(self) -> None:
        """Drop everything unsent: nothing more will leave on this connection."""
        self.closed = True
        self._items.clear()
        self._grow(-self.bytes)

    def _grow(self, n: int) -> None:
        self.bytes += n
        self.pool.used += n

    async def write_loop(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not self._items:
                self._ready.clear()
                await self._ready.wait()
                continue
            item = self._items.popleft()
            self.sending_since = loop.time()
            try:
                if len(item.chunks) == 1:
                    await ws.send(item.chunks[0])
                else:
                    await ws.send(self._paced(item.chunks, loop))
            except ConnectionClosed:
                return
            finally:
                self.sending_since = None
                if not self.closed:
                    self._grow(-item.size)

    async def _paced(
        self, chunks: list[memoryview], loop: asyncio.AbstractEventLoop
    ) -> AsyncIterator[memoryview]:
        """Fragments one by one; each resumes only once the previous one left (websockets
        drains between fragments), which is how the stall watchdog sees progress."""
        for piece in fragments(chunks):
            self.sending_since = loop.time()
            yield piece

    def stalled(self, now: float, timeout: float) -> bool:
        """A message has made no progress for ``timeout`` s: the peer stopped reading."""
        return self.sending_since is not None and now - self.sending_since > timeout
