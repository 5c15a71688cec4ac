"""Framing: golden bytes for every message type, and what the decoder does with bad bytes.

The goldens pin the wire format. If one of them fails, the bytes on the wire changed: that is
either a bug or a protocol change, which needs docs/protocol.md and, if incompatible, a new
version, never just a new golden.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    Accepted,
    Array,
    Cancel,
    Cancelled,
    DType,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    JobParams,
    Limits,
    ListModels,
    Message,
    ModelInfo,
    Models,
    Progress,
    ProtocolError,
    Result,
    Task,
    Welcome,
    decode_client_message,
    decode_server_message,
    encode,
    encode_bytes,
)
from sfumato.protocol.codec import CLIENT_TYPES, MAX_HEADER_BYTES, SERVER_TYPES

from .strategies import FAST, client_messages, server_messages, wire_values


def u8(shape: tuple[int, int, int], values: Any) -> Array:
    return Array(DType.UINT8, shape, bytes(values))


MODEL = ModelInfo("tiny-sd", "tiny-sd", "base", license="Apache-2.0", tiny=True)

# name: (message, header hex, blob hexes). Headers start with a fixmap (0x8N) whose first two
# entries are always "v": 1 (a1 76 01) and "type" (a4 74797065 …).
GOLDEN: dict[str, tuple[Message, str, list[str]]] = {
    "hello": (
        Hello(client="krita", version="0.1.0", token="s3cret", client_id="c1"),
        "86 a176 01 a474797065 a568656c6c6f a6636c69656e74 a56b72697461 a776657273696f6e"
        "a5302e312e30 a5746f6b656e a6733363726574 a9636c69656e745f6964 a26331",
        [],
    ),
    "job": (
        Job(
            "j1",
            Task.INPAINT,
            JobParams(prompt="a red door", width=64, height=64, steps=4, seed=42),
            image=u8((2, 2, 3), range(12)),
            mask=u8((2, 2, 1), [255, 0, 0, 255]),
        ),
        "86 a176 01 a474797065 a36a6f62 a26964 a26a31 a47461736b a7696e7061696e74"
        "a6706172616d73 89 a670726f6d7074 aa612072656420646f6f72 a86e65676174697665 a0"
        "a5776964746840 a668656967687440 a5737465707304 a867756964616e6365 cb401c000000000000"
        "a8737472656e677468 cb3fe8000000000000 a876617269616e747301 a4736565642a"
        "a6696e70757473 82"
        " a5696d616765 83 a56474797065 a575696e7438 a57368617065 93020203 a66f6666736574 00"
        " a46d61736b 83 a56474797065 a575696e7438 a57368617065 93020201 a66f6666736574 0c",
        ["000102030405060708090a0b", "ff0000ff"],
    ),
    "cancel": (Cancel("j1"), "83 a176 01 a474797065 a663616e63656c a26964 a26a31", []),
    "fetch": (Fetch("j1"), "83 a176 01 a474797065 a56665746368 a26964 a26a31", []),
    "models_request": (ListModels(), "82 a176 01 a474797065 a66d6f64656c73", []),
    "welcome": (
        Welcome(
            server="0.1.0",
            protocol=1,
            capabilities=("generate", "refine", "inpaint"),
            models=(MODEL,),
            default_model="tiny-sd",
            limits=Limits(),
            client_id="c1",
            notice="tiny model: images are noise",
        ),
        "8a a176 01 a474797065 a777656c636f6d65 a6736572766572 a5302e312e30"
        "a870726f746f636f6c 01 ac6361706162696c6974696573 93 a867656e6572617465 a6726566696e65"
        "a7696e7061696e74 a66d6f64656c73 91 87 a46e616d65 a774696e792d7364 a666616d696c79"
        "a774696e792d7364 a46b696e64 a462617365 a76c6963656e7365 aa4170616368652d322e30"
        "a8617070726f766564 c3 a474696e79 c3 ab6465736372697074696f6e a0"
        "ad64656661756c745f6d6f64656c a774696e792d7364 a66c696d697473 86"
        "b16d61785f6d6573736167655f6279746573 ce10000000 ae6d61785f696d6167655f73696465 cd1000"
        "af6d61785f7175657565645f6a6f6273 08 ac6d61785f76617269616e7473 10"
        "a96d61785f7374657073 cc96 b06d61785f70726f6d70745f6368617273 cd0fa0"
        "a9636c69656e745f6964 a26331 a66e6f74696365"
        "bc74696e79206d6f64656c3a20696d6167657320617265206e6f697365",
        [],
    ),
    "models": (
        Models((MODEL,), "tiny-sd"),
        "84 a176 01 a474797065 a66d6f64656c73 a66d6f64656c73 91 87 a46e616d65 a774696e792d7364"
        "a666616d696c79 a774696e792d7364 a46b696e64 a462617365 a76c6963656e7365"
        "aa4170616368652d322e30 a8617070726f766564 c3 a474696e79 c3 ab6465736372697074696f6e a0"
        "ad64656661756c745f6d6f64656c a774696e792d7364",
        [],
    ),
    "accepted": (
        Accepted("j1", 0),
        "84 a176 01 a474797065 a86163636570746564 a26964 a26a31 a8706f736974696f6e 00",
        [],
    ),
    "progress": (
        Progress("j1", 2, 4, preview=u8((1, 2, 3), range(10, 16))),
        "87 a176 01 a474797065 a870726f6772657373 a26964 a26a31 a47374657002 a5746f74616c04"
        "a57374616765 a764656e6f697365 a770726576696577 83 a56474797065 a575696e7438"
        "a57368617065 93010203 a66f6666736574 00",
        ["0a0b0c0d0e0f"],
    ),
    "result": (
        Result(
            "j1",
            Task.INPAINT,
            images=(u8((1, 1, 3), [1, 2, 3]), u8((1, 1, 3), [4, 5, 6])),
            seeds=(42, 43),
            model="tiny-sd",
            tiny=True,
            prompt="a red door",
            timings={"total": 1.5},
        ),
        "8a a176 01 a474797065 a6726573756c74 a26964 a26a31 a47461736b a7696e7061696e74"
        "a6696d61676573 92"
        " 83 a56474797065 a575696e7438 a57368617065 93010103 a66f6666736574 00"
        " 83 a56474797065 a575696e7438 a57368617065 93010103 a66f6666736574 03"
        "a57365656473 922a2b a56d6f64656c a774696e792d7364 a474696e79 c3 a670726f6d7074"
        "aa612072656420646f6f72 a774696d696e6773 81 a5746f74616c cb3ff8000000000000",
        ["010203", "040506"],
    ),
    "error": (
        Error(
            ErrorCode.BAD_FIELD,
            "params.steps must be an integer from 1 to 150, got 0",
            id="j1",
            field="params.steps",
        ),
        "86 a176 01 a474797065 a56572726f72 a4636f6465 a96261645f6669656c64"
        "a76d657373616765 d934"
        "706172616d732e7374657073206d75737420626520616e20696e74656765722066726f6d203120746f20"
        "3135302c20676f742030 a26964 a26a31 a56669656c64 ac706172616d732e7374657073",
        [],
    ),
    "cancelled": (Cancelled("j1"), "83 a176 01 a474797065 a963616e63656c6c6564 a26964 a26a31", []),
}
CLIENT_GOLDEN = {"hello", "job", "cancel", "fetch", "models_request"}


def decode(message_bytes: bytes, name: str, limits: Limits | None = None) -> Message:
    if name in CLIENT_GOLDEN:
        return decode_client_message(message_bytes, limits)
    return decode_server_message(message_bytes, limits)


def test_golden_covers_every_message_type() -> None:
    assert {type(m) for m, _, _ in GOLDEN.values()} == {
        *CLIENT_TYPES.values(),
        *SERVER_TYPES.values(),
    }


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_encode(name: str) -> None:
    message, header, blobs = GOLDEN[name]
    chunks = [bytes(c) for c in encode(message)]
    assert chunks == [bytes.fromhex(header), *(bytes.fromhex(b) for b in blobs)]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_decode(name: str) -> None:
    message, header, blobs = GOLDEN[name]
    wire = bytes.fromhex(header + "".join(blobs))
    assert decode(wire, name) == message


def test_golden_job_layout_matches_protocol_md() -> None:
    """The worked example of docs/protocol.md: key order as written, offsets into the blobs."""
    message, header_hex, _ = GOLDEN["job"]
    wire = encode_bytes(message)
    header_len = len(bytes.fromhex(header_hex))
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(wire)
    header = unpacker.unpack()
    assert unpacker.tell() == header_len == 223
    assert list(header) == ["v", "type", "id", "task", "params", "inputs"]
    assert list(header["params"]) == [
        "prompt", "negative", "width", "height", "steps", "guidance", "strength", "variants",
        "seed",
    ]  # fmt: skip
    assert header["inputs"] == {
        "image": {"dtype": "uint8", "shape": [2, 2, 3], "offset": 0},
        "mask": {"dtype": "uint8", "shape": [2, 2, 1], "offset": 12},
    }
    assert wire[header_len:] == bytes(range(12)) + b"\xff\x00\x00\xff"


def test_encode_passes_array_buffers_through() -> None:
    """Arrays are not copied into the header: the chunk is a view of the caller's buffer."""
    pixels = bytearray(range(12))
    job = Job("j1", Task.REFINE, image=Array(DType.UINT8, (2, 2, 3), pixels))
    header, blob = encode(job)
    assert blob.obj is pixels
    pixels[0] = 99  # proves the view, not a snapshot
    assert blob[0] == 99
    assert encode_bytes(job) == bytes(header) + bytes(pixels)


# ----------------------------------------------------------------------------- bad frames


def packed(header: dict[str, Any], tail: bytes = b"") -> bytes:
    return msgpack.packb(header, use_bin_type=True) + tail


def code_of(data: bytes, *, server: bool = False, limits: Limits | None = None) -> ErrorCode:
    decoder = decode_server_message if server else decode_client_message
    with pytest.raises(ProtocolError) as info:
        decoder(data, limits)
    return info.value.code


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # the one byte msgpack never uses
        msgpack.packb([1, "type", "hello"]),  # not a map
        msgpack.packb(1),
        bytes.fromhex("82a17601a474797065"),  # map of 2 with the second value missing
        bytes.fromhex("81a17601")[:-1],
        b"\x81\xa1v\xa2\xff\xfe",  # a string that is not UTF-8
        b"\x81\x01\x01",  # a map key that is not a string
    ],
    ids=["empty", "c1", "list", "int", "truncated", "truncated-key", "bad-utf8", "int-key"],
)
def test_bad_frame(data: bytes) -> None:
    assert code_of(data) is ErrorCode.BAD_FRAME
    assert code_of(data, server=True) is ErrorCode.BAD_FRAME


def test_header_over_one_mib_is_bad_frame() -> None:
    data = packed({"v": 1, "type": "hello", "client": "x" * (MAX_HEADER_BYTES + 100)})
    assert code_of(data) is ErrorCode.BAD_FRAME


@pytest.mark.parametrize("version", [None, 0, 2, "1", True, 1.0, [1]])
def test_bad_version(version: Any) -> None:
    header = {"type": "models"} if version is None else {"v": version, "type": "models"}
    with pytest.raises(ProtocolError) as info:
        decode_client_message(packed(header))
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_VERSION, "v")


@pytest.mark.parametrize("kind", [None, "frobnicate", 5, "welcome", "Hello"])
def test_unknown_type_from_client(kind: Any) -> None:
    header = {"v": 1} if kind is None else {"v": 1, "type": kind}
    with pytest.raises(ProtocolError) as info:
        decode_client_message(packed(header))
    assert (info.value.code, info.value.field) == (ErrorCode.UNKNOWN_TYPE, "type")


@pytest.mark.parametrize("kind", ["job", "hello", "cancel"])
def test_unknown_type_from_server(kind: str) -> None:
    """Each side decodes only what the other side sends."""
    assert code_of(packed({"v": 1, "type": kind, "id": "a"}), server=True) is (
        ErrorCode.UNKNOWN_TYPE
    )


def test_frame_too_large_counts_the_whole_message() -> None:
    job = Job("j1", Task.REFINE, image=u8((4, 4, 3), range(48)))
    data = encode_bytes(job)
    assert decode_client_message(data, Limits(max_message_bytes=len(data))) == job
    with pytest.raises(ProtocolError) as info:
        decode_client_message(data, Limits(max_message_bytes=len(data) - 1))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE


def test_unknown_top_level_field_rejected_from_client() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(packed({"v": 1, "type": "cancel", "id": "j1", "urgent": True}))
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_FIELD, "urgent")


def test_unknown_top_level_field_tolerated_from_server() -> None:
    data = packed({"v": 1, "type": "cancelled", "id": "j1", "note": "user"})
    assert decode_server_message(data) == Cancelled("j1")


def test_nil_reads_as_absent() -> None:
    """An explicit nil is the same as leaving an optional field out (and fails a required one)."""
    data = packed({"v": 1, "type": "hello", "client": "k", "token": None})
    assert decode_client_message(data) == Hello("k")
    with pytest.raises(ProtocolError) as info:
        decode_client_message(packed({"v": 1, "type": "cancel", "id": None}))
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_FIELD, "id")


def test_rejected_job_names_its_id() -> None:
    """The error for a job that fails to decode names the job, so its client stops waiting."""
    bad_steps = {"v": 1, "type": "job", "id": "j7", "task": "generate", "params": {"steps": 0}}
    with pytest.raises(ProtocolError) as info:
        decode_client_message(packed(bad_steps))
    assert (info.value.code, info.value.field, info.value.id) == (
        ErrorCode.BAD_FIELD,
        "params.steps",
        "j7",
    )
    for bad_id in ("../j7", "j7\n", 7):  # an id that is itself malformed is not echoed
        with pytest.raises(ProtocolError) as info:
            decode_client_message(packed({**bad_steps, "id": bad_id}))
        assert (info.value.field, info.value.id) == ("id", None)


# ----------------------------------------------------------------------------- properties


def decode_either(data: bytes, server: bool) -> Message | ProtocolError:
    """The contract for hostile input: a message, or ProtocolError, never anything else."""
    try:
        return decode_server_message(data) if server else decode_client_message(data)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode) and exc.message
        return exc


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes(data: bytes, server: bool) -> None:
    decode_either(data, server)


FIELD_NAMES = [
    "id", "task", "params", "inputs", "client", "token", "images", "seeds", "preview", "limits",
    "models", "code", "step", "total", "server", "protocol", "position",
]  # fmt: skip


@FAST
@given(
    st.sampled_from(sorted({*CLIENT_TYPES, *SERVER_TYPES})),
    st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        wire_values,
    ),
    st.binary(max_size=64),
    st.booleans(),
)
def test_random_maps(kind: str, fields: dict[str, Any], tail: bytes, server: bool) -> None:
    decode_either(packed({"v": 1, "type": kind, **fields}, tail), server)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


@FAST
@given(st.one_of(client_messages, server_messages), st.data())
def test_one_field_replaced_by_anything(message: Message, data: st.DataObject) -> None:
    """Start from a valid message and break one value anywhere in its header."""
    wire = encode_bytes(message)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(wire)
    header = unpacker.unpack()
    tail = wire[unpacker.tell() :]
    path = data.draw(st.sampled_from(_paths(header)))
    target = header
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(wire_values)
    decode_either(packed(header, tail), isinstance(message, tuple(SERVER_TYPES.values())))


@FAST
@given(st.one_of(client_messages, server_messages), st.data())
def test_truncated_message(message: Message, data: st.DataObject) -> None:
    """A cut inside the header is a bad frame; a cut inside the arrays is a bad array."""
    header = encode(message)[0]
    wire = encode_bytes(message)
    cut = data.draw(st.integers(0, len(wire) - 1))
    server = isinstance(message, tuple(SERVER_TYPES.values()))
    result = decode_either(wire[:cut], server)
    assert isinstance(result, ProtocolError)
    assert result.code is (ErrorCode.BAD_FRAME if cut < header.nbytes else ErrorCode.BAD_ARRAY)
