"""Bytes ↔ messages. No I/O: callers hand in the bytes of one websocket message and send the
chunks they get back (as one message, fragmented or not; see docs/protocol.md, "Framing").

A message is a msgpack map (the header) followed directly by the raw bytes of the arrays
it references. Packing pixels inside the msgpack map would copy them twice on each side;
appending them lets the sender pass its buffers through and the receiver view them in place.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ._fields import BlobWriter, Reader
from .errors import ErrorCode, ProtocolError
from .events import Accepted, Cancelled, Error, Models, Progress, Result, Welcome
from .limits import Limits
from .messages import JOB_ID, Cancel, Fetch, Hello, Job, ListModels
from .refs import Place, Resolver, resolving
from .text import echo
from .version import PROTOCOL_VERSION

ClientMessage = Hello | Job | Cancel | Fetch | ListModels
ServerMessage = Welcome | Models | Accepted | Progress | Result | Error | Cancelled
Message = ClientMessage | ServerMessage

CLIENT_TYPES: dict[str, Any] = {m.TYPE: m for m in (Hello, Job, Cancel, Fetch, ListModels)}
SERVER_TYPES: dict[str, Any] = {
    m.TYPE: m for m in (Welcome, Models, Accepted, Progress, Result, Error, Cancelled)
}
MAX_HEADER_BYTES = 1024 * 1024
MAX_HEADER_ENTRIES = 100_000  # in any one array or map of a header
MAX_HEADER_DEPTH = 32  # arrays and maps inside each other; v1 messages need at most 6


def encode(message: Message, place: Place | None = None) -> list[memoryview]:
    """The chunks of one wire message: the header, then each array's bytes (not copied).
    ``place`` may send arrays by reference instead (refs.py; capabilities input_ref, shm)."""
    blobs = BlobWriter(place)
    header = {"v": PROTOCOL_VERSION, "type": message.TYPE, **message._write(blobs)}
    return [memoryview(msgpack.packb(header, use_bin_type=True)), *blobs.chunks]


def fragments(chunks: list[memoryview], size: int = 1024 * 1024) -> list[memoryview]:
    """Split chunks into pieces of at most ``size`` bytes, for sending as one fragmented
    websocket message: many 1 MiB frames cost far less than one huge frame (benchmarks/)."""
    out: list[memoryview] = []
    for chunk in chunks:
        out.extend(chunk[i : i + size] for i in range(0, chunk.nbytes, size))
    return out or [memoryview(b"")]


def encode_bytes(message: Message) -> bytes:
    """One contiguous ``bytes`` (copies the arrays; fine for small messages and tests)."""
    return b"".join(encode(message))


def decode_client_message(
    data: bytes | bytearray | memoryview,
    limits: Limits | None = None,
    resolver: Resolver | None = None,
) -> ClientMessage:
    """Parse what a client sent. Strict: unknown fields are errors (they are typos).
    ``resolver`` answers arrays sent by reference (refs.py); without one they are refused."""
    with resolving(resolver):
        return _decode(data, CLIENT_TYPES, limits or Limits(), strict=True)  # type: ignore[return-value]


def decode_server_message(
    data: bytes | bytearray | memoryview, limits: Limits | None = None
) -> ServerMessage:
    """Parse what a server sent. Lenient: newer servers may add fields."""
    return _decode(data, SERVER_TYPES, limits or Limits(), strict=False)  # type: ignore[return-value]


def _decode(
    data: bytes | bytearray | memoryview, types: dict[str, Any], limits: Limits, *, strict: bool
) -> Message:
    view = memoryview(data).cast("B")
    if view.nbytes > limits.max_message_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"message of {view.nbytes} bytes exceeds max_message_bytes {limits.max_message_bytes}; "
            "send smaller images",
            id=message_id(view),
        )
    header, end = _unpack_header(view)
    version = header.get("v")
    # `type` too: msgpack's true and 1.0 compare equal to 1 in Python, yet are not version 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.BAD_VERSION,
            f"protocol version {echo(version)} is not supported; this peer speaks "
            f"v{PROTOCOL_VERSION}. Update the plugin or the server so both match",
            field="v",
        )
    kind = header.get("type")
    cls = types.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(types))
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {echo(kind)}; expected one of {known}",
            field="type",
        )
    reader = Reader({k: v for k, v in header.items() if k not in ("v", "type")}, "", view[end:])
    try:
        message = cls._read(reader, limits)
        if strict:
            reader.finish()
    except ProtocolError as exc:
        # Name the job, so a client waiting on it learns that it failed.
        if exc.id is None:
            exc.id = _valid_id(header.get("id"))
        raise
    return message  # type: ignore[no-any-return]


def _valid_id(value: Any) -> str | None:
    return value if isinstance(value, str) and JOB_ID.match(value) else None


def message_id(data: bytes | bytearray | memoryview | str) -> str | None:
    """The job id of a message refused before decoding (too large), when its start holds a
    readable header: reading costs at most the 1 MiB header, never the payload. A transport
    that drops such a message while it arrives passes its first bytes here (a text frame has
    no id)."""
    if isinstance(data, str):
        return None
    try:
        header, _ = _unpack_header(memoryview(data).cast("B"))
    except ProtocolError:
        return None
    return _valid_id(header.get("id"))


def _unpack_header(view: memoryview) -> tuple[dict[Any, Any], int]:
    # Feed only what a header may span: feeding the whole message would copy every pixel.
    head = view[: MAX_HEADER_BYTES + 16]
    unpacker = msgpack.Unpacker(
        raw=False, max_buffer_size=max(head.nbytes, 1), max_bin_len=MAX_HEADER_BYTES,
        max_str_len=MAX_HEADER_BYTES, max_array_len=MAX_HEADER_ENTRIES,
        max_map_len=MAX_HEADER_ENTRIES,
        strict_map_key=True,
    )  # fmt: skip
    unpacker.feed(head)
    try:
        header = unpacker.unpack()
    except msgpack.OutOfData:
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            "truncated message: the msgpack header is incomplete (or over 1 MiB)",
        ) from None
    except msgpack.StackError:
        raise _too_deep() from None
    except ValueError as exc:
        if "exceeds max_" in str(exc):  # msgpack's wording for max_array_len / max_map_len
            raise ProtocolError(
                ErrorCode.BAD_FRAME,
                f"an array or map in the header has more than {MAX_HEADER_ENTRIES} entries, "
                "the protocol's limit; send fewer",
            ) from None
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"not a msgpack message ({type(exc).__name__})"
        ) from None
    except (msgpack.UnpackException, TypeError) as exc:
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"not a msgpack message ({type(exc).__name__})"
        ) from None
    if not isinstance(header, dict):
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"a message must start with a msgpack map, got {type(header).__name__}",
        )
    _check_depth(header)
    return header, unpacker.tell()


def _too_deep(job_id: str | None = None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.BAD_FRAME,
        f"the header nests arrays and maps more than {MAX_HEADER_DEPTH} deep, the protocol's "
        "limit; no message of this protocol needs that many levels",
        id=job_id,
    )


def _check_depth(header: dict[Any, Any]) -> None:
    """Refuse deep nesting up front, iteratively: no field reader, error message or equality
    check after this can then recurse past Python's limit on a peer's input."""
    level: list[Any] = [header]
    for _ in range(MAX_HEADER_DEPTH):
        level = [
            v
            for node in level
            for v in (node.values() if isinstance(node, dict) else node)
            if isinstance(v, (dict, list))
        ]
        if not level:
            return
    raise _too_deep(_valid_id(header.get("id")))
