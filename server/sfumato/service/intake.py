"""Receiving one client message under the server-wide byte budget.

websockets would assemble each message whole before handing it over, so three clients
sending 500 MiB at once took the server to 3 GB before any check ran (issue 17). Here a message
is read fragment by fragment: every fragment takes its bytes from the shared
:class:`~.limits.ByteBudget` first, a message past ``max_message_bytes`` stops being kept as
soon as it crosses the limit, and a message that finds no room within ``inflight_wait`` is
refused with ``server_busy`` (its rest is read and dropped). The transport's own caps bound
what is buffered beneath: ``max_frame_bytes`` per frame, a few frames per connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

from ..protocol import Error, ErrorCode, Limits
from ..protocol.codec import message_id
from .config import MIB
from .resources import ByteBudget


@dataclass
class Incoming:
    """One message as received: its bytes, or the error to answer instead."""

    data: bytes | bytearray | None
    held: int  # bytes taken from the budget; give them back when done with ``data``
    refusal: Error | None = None


async def receive(
    ws: ServerConnection, budget: ByteBudget, limits: Limits, wait: float
) -> Incoming:
    """Read the next message. Raises ``ConnectionClosed`` (nothing held) when the peer goes."""
    buffer: bytes | bytearray | None = None
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
                refusal = _too_large(limits, message_id(buffer if buffer is not None else fragment))
            elif not await budget.take(len(fragment), wait):
                refusal = _busy(
                    budget, wait, message_id(buffer if buffer is not None else fragment)
                )
            if refusal is not None:
                buffer = None
                budget.give(held)
                held = 0
                continue
            assert isinstance(fragment, bytes)
            held += len(fragment)
            if buffer is None:
                buffer = fragment
            elif isinstance(buffer, bytearray):
                buffer += fragment  # grows in place (realloc), no second copy of the message
            else:
                buffer = bytearray(buffer)
                buffer += fragment
    except BaseException:
        budget.give(held)
        raise
    if text:
        refusal = Error(ErrorCode.BAD_FRAME, "send binary msgpack messages, not text frames")
    if refusal is not None:
        return Incoming(None, 0, refusal)
    return Incoming(buffer if buffer is not None else b"", held)


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
