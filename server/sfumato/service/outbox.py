"""One connection's outgoing messages, bounded in bytes, and the writer that drains them.

A client that submits jobs and never reads used to grow the server without end: every result
waited in an unbounded queue behind a socket that never drained (issue 17, ~9 MB/s). Now a
connection's unsent messages may take ``outbox_bytes``; past that the connection is closed with
a reason — its results stay in the result store, so it can reconnect and ``fetch`` them.
Progress events are droppable (the next one supersedes them); results and errors are not.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..protocol import Progress, ServerMessage, encode, fragments

PROGRESS_BACKLOG = 64  # past this many queued messages a stalled client's progress is dropped


@dataclass
class _Item:
    message: ServerMessage
    chunks: list[memoryview]
    size: int


class Outbox:
    def __init__(self, budget: int) -> None:
        self.budget = budget
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
        over = self.bytes > 0 and self.bytes + size > self.budget
        if isinstance(message, Progress):
            if over or len(self._items) > PROGRESS_BACKLOG:
                self.dropped_progress += 1
                return True
        elif over:
            return False
        self._items.append(_Item(message, chunks, size))
        self.bytes += size
        self._ready.set()
        return True

    def empty(self) -> bool:
        return not self._items and self.sending_since is None

    def close(self) -> None:
        """Drop everything unsent: nothing more will leave on this connection."""
        self.closed = True
        self._items.clear()
        self.bytes = 0

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
                    self.bytes -= item.size

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
