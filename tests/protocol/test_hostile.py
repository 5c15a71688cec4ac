"""Input no correct peer sends: every piece of it still gets a typed error that names the field
and the fix, of bounded size, and nothing in the decoder recurses or echoes without limit."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    ErrorCode,
    Hello,
    Job,
    JobParams,
    Limits,
    ProtocolError,
    ServerSession,
    Task,
    decode_client_message,
    decode_server_message,
    encode,
    encode_bytes,
)
from sfumato.protocol.codec import MAX_HEADER_DEPTH, MAX_HEADER_ENTRIES
from sfumato.protocol.messages import denoising_steps, min_steps, min_strength
from sfumato.protocol.text import ECHO_LIMIT, echo, loggable

from .strategies import FAST, client_messages, jobs, server_messages

IMAGE = {"dtype": "uint8", "shape": [2, 2, 3], "offset": 0}
MASK = {"dtype": "uint8", "shape": [2, 2, 1], "offset": 12}
PIXELS = bytes(range(12)) + b"\xff\x00\x00\xff"
# An error message quotes at most ECHO_LIMIT characters of input; the rest is our own text.
MESSAGE_BOUND = 4 * ECHO_LIMIT + 400


def refusal(data: bytes, limits: Limits | None = None, server: bool = False) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        (decode_server_message if server else decode_client_message)(data, limits)
    return info.value


def nested(depth: int, leaf: bytes = b"\x01") -> bytes:
    """msgpack bytes of a list nested ``depth`` deep (msgpack's packer cannot make them)."""
    return b"\x91" * depth + leaf


def job_with_width(raw_value: bytes) -> bytes:
    """A generate job whose params.width is the given raw msgpack bytes."""
    head = msgpack.packb({"v": 1, "type": "job", "id": "deep", "task": "generate"})
    return bytes([head[0] + 1]) + head[1:] + msgpack.packb("params") + b"\x81" + msgpack.packb(
        "width"
    ) + raw_value  # fmt: skip


# ----------------------------------------------------------------------------- nesting


@FAST
@given(st.integers(MAX_HEADER_DEPTH, 20_000))
def test_deep_nesting_is_a_bad_frame_naming_the_limit(depth: int) -> None:
    """Issue 17: a list ~1000 deep made the error text recurse past Python's limit (1011)."""
    error = refusal(job_with_width(nested(depth)))
    assert error.code is ErrorCode.BAD_FRAME
    assert str(MAX_HEADER_DEPTH) in error.message and len(error.message) < MESSAGE_BOUND


@FAST
@given(st.integers(1, MAX_HEADER_DEPTH - 4))
def test_shallow_nesting_is_a_bad_field(depth: int) -> None:
    error = refusal(job_with_width(nested(depth)))
    assert (error.code, error.field, error.id) == (ErrorCode.BAD_FIELD, "params.width", "deep")
    assert len(error.message) < MESSAGE_BOUND


@pytest.mark.parametrize("server", [False, True])
def test_nesting_limit_holds_for_both_directions(server: bool) -> None:
    data = msgpack.packb({"v": 1, "type": "job" if not server else "welcome"})
    data = bytes([data[0] + 1]) + data[1:] + msgpack.packb("x") + nested(1500)
    assert refusal(data, server=server).code is ErrorCode.BAD_FRAME


def test_every_real_message_is_well_inside_the_nesting_limit() -> None:
    """The limit refuses nothing a correct peer sends (its deepest path is a control's shape)."""
    unpacker = msgpack.Unpacker(raw=False)

    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0

    @FAST
    @given(st.one_of(client_messages, server_messages))
    def check(message: Any) -> None:
        unpacker.feed(encode_bytes(message))
        assert depth(unpacker.unpack()) <= 6 < MAX_HEADER_DEPTH
        unpacker.__init__(raw=False)  # type: ignore[misc]

    check()


def test_too_many_entries_names_the_limit() -> None:
    data = msgpack.packb(
        {"v": 1, "type": "job", "id": "j1", "params": {"loras": [0] * (MAX_HEADER_ENTRIES + 1)}}
    )
    error = refusal(data)
    assert error.code is ErrorCode.BAD_FRAME
    assert "100000 entries" in error.message and "ValueError" not in error.message


# ----------------------------------------------------------------------------- bounded echo


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"v": "x" * 500_000, "type": "models"}, id="huge-version"),
        pytest.param({"v": b"\0" * 500_000, "type": "models"}, id="huge-binary-version"),
        pytest.param({"v": 1, "type": "y" * 500_000}, id="huge-type"),
        pytest.param({"v": 1, "type": "models", "z" * 500_000: 1}, id="huge-unknown-key"),
        pytest.param(
            {"v": 1, "type": "job", "id": "j1", "task": "generate", "params": {"width": "w" * 500_000}},
            id="huge-wrong-type",
        ),
        pytest.param(
            {"v": 1, "type": "job", "id": "j1", "task": "generate",
             "params": {"expand": list(range(90_000))}},
            id="huge-list",
        ),
        pytest.param(
            {"v": 1, "type": "job", "id": "j1", "task": "refine",
             "inputs": {"image": {"dtype": "uint8", "shape": list(range(90_000)), "offset": 0}}},
            id="huge-shape",
        ),
    ],
)  # fmt: skip
def test_errors_that_quote_input_are_bounded(fields: dict[str, Any]) -> None:
    """Issue 17: a 1 MiB `v` produced a 4 MiB bad_version error."""
    error = refusal(msgpack.packb(fields, use_bin_type=True))
    assert len(error.message) < MESSAGE_BOUND and len(error.field or "") <= ECHO_LIMIT
    assert "…" in error.message or "..." in error.message  # the cut is visible


@FAST
@given(
    st.recursive(
        st.text() | st.binary() | st.integers(),
        lambda i: st.lists(i) | st.dictionaries(st.text(), i),
    )
)
def test_echo_is_bounded_and_one_line(value: Any) -> None:
    text = echo(value)
    assert len(text) <= ECHO_LIMIT and "\n" not in text and "\r" not in text


@FAST
@given(st.text())
def test_loggable_text_never_breaks_a_log_line(text: str) -> None:
    out = loggable(text)
    assert out.isprintable() and len(out) <= ECHO_LIMIT
    if text.isprintable() and len(text) <= ECHO_LIMIT:
        assert out == text  # ordinary names are logged as they are


# ----------------------------------------------------------------------------- nil = absent


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path to a map entry in a decoded header, below ``v`` and ``type``."""
    out = []
    if isinstance(value, dict):
        for key, v in value.items():
            if path or key not in ("v", "type"):
                out.append((*path, key))
            out.extend(_paths(v, (*path, key)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*path, i)))
    return out


def _outcome(data: bytes, server: bool) -> Any:
    try:
        return (decode_server_message if server else decode_client_message)(data)
    except ProtocolError as exc:
        return (exc.code, exc.field)


@FAST
@given(
    st.one_of(client_messages.map(lambda m: (m, False)), server_messages.map(lambda m: (m, True))),
    st.data(),
)
def test_nil_is_absent_everywhere(sent: tuple[Any, bool], data: st.DataObject) -> None:
    """Protocol §2: a value of nil means the same as an absent key, for every key of every
    message: nil-ing a key decodes exactly like deleting it (both fine, or the same error)."""
    message, server = sent
    chunks = [bytes(c) for c in encode(message)]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(chunks[0])
    header = unpacker.unpack()
    paths = _paths(header)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))

    def edited(delete: bool) -> bytes:
        copy = msgpack.unpackb(chunks[0], raw=False)
        node = copy
        for key in path[:-1]:
            node = node[key]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = None
        return msgpack.packb(copy, use_bin_type=True) + b"".join(chunks[1:])

    assert _outcome(edited(False), server) == _outcome(edited(True), server)


def test_nil_expand_is_absent() -> None:
    """Issue 17: `params.expand: nil` said "params.expand is required"."""
    data = msgpack.packb(
        {"v": 1, "type": "job", "id": "j1", "task": "generate", "params": {"expand": None}}
    )
    job = decode_client_message(data)
    assert isinstance(job, Job) and job.params.expand == (0, 0, 0, 0)


# ----------------------------------------------------------------------------- strength


def _image_job(task: str, steps: int, strength: float) -> bytes:
    inputs: dict[str, Any] = {"image": IMAGE}
    params: dict[str, Any] = {"steps": steps, "strength": strength}
    if task == "inpaint":
        inputs["mask"] = MASK
    if task == "outpaint":
        params["expand"] = [8, 0, 0, 0]
    header = {"v": 1, "type": "job", "id": "s1", "task": task, "params": params, "inputs": inputs}
    return msgpack.packb(header) + PIXELS


@FAST
@given(
    st.sampled_from(["refine", "inpaint", "outpaint", "upscale"]),
    st.integers(1, 150),
    st.floats(0.0, 1.0, allow_nan=False) | st.sampled_from([0.0, 1.0, 0.05, 0.1, 1 / 3]),
)
def test_strength_boundary(task: str, steps: int, strength: float) -> None:
    """Issue 9.19: a job that would run no denoising step is refused at decode (so before it
    queues) with bad_field params.strength, and the fix it names is accepted."""
    data = _image_job(task, steps, strength)
    if int(steps * strength) >= 1:  # diffusers' count, as its img2img and inpaint compute it
        assert isinstance(decode_client_message(data), Job)
        return
    error = refusal(data)
    assert (error.code, error.field, error.id) == (ErrorCode.BAD_FIELD, "params.strength", "s1")
    fixed = min_strength(steps)
    assert f"at least {fixed}" in error.message
    assert isinstance(decode_client_message(_image_job(task, steps, fixed)), Job)
    more = min_steps(strength, 150)
    if more is not None:
        assert f"params.steps to at least {more}" in error.message
        assert isinstance(decode_client_message(_image_job(task, more, strength)), Job)
        assert more == 1 or denoising_steps(more - 1, strength) == 0  # the fewest
    assert fixed == 0.01 or denoising_steps(steps, round(fixed - 0.01, 2)) == 0


@FAST
@given(st.integers(1, 150), st.floats(0.0, 1.0, allow_nan=False))
def test_generate_ignores_strength(steps: int, strength: float) -> None:
    data = msgpack.packb(
        {"v": 1, "type": "job", "id": "g", "task": "generate",
         "params": {"steps": steps, "strength": strength}}
    )  # fmt: skip
    assert isinstance(decode_client_message(data), Job)


# ----------------------------------------------------------------------------- messages


def test_wrongly_typed_width_says_the_real_rule() -> None:
    """Issue 9.22: it said "an integer from 8 to 2147483648"."""
    data = msgpack.packb(
        {"v": 1, "type": "job", "id": "j1", "task": "generate", "params": {"width": "wide"}}
    )
    error = refusal(data, Limits(max_image_side=1024))
    assert error.field == "params.width"
    assert "multiple of 8" in error.message and "max_image_side (1024)" in error.message
    assert "2147483648" not in error.message


def test_second_hello_names_the_field_and_the_fix() -> None:
    session = ServerSession(Limits())
    session.receive(encode_bytes(Hello("test")))
    with pytest.raises(ProtocolError) as info:
        session.receive(encode_bytes(Hello("test")))
    assert info.value.code is ErrorCode.BAD_FIELD and info.value.field == "type"
    assert "type hello" in info.value.message and "new connection" in info.value.message


@FAST
@given(jobs(), st.integers(1, 10_000))
def test_frame_too_large_names_the_job(job: Job, over: int) -> None:
    """Issue 9.22: a message over max_message_bytes is refused with the job's id."""
    wire = encode_bytes(job)
    error = refusal(wire, Limits(max_message_bytes=max(0, len(wire) - over)))
    assert (error.code, error.id) == (ErrorCode.FRAME_TOO_LARGE, job.id)


def test_frame_too_large_without_a_readable_header_has_no_id() -> None:
    error = refusal(b"\xc1" * 100, Limits(max_message_bytes=10))
    assert (error.code, error.id) == (ErrorCode.FRAME_TOO_LARGE, None)


def test_job_params_defaults_are_valid_for_every_task() -> None:
    """The dataclass defaults (what the hosts send) pass the strength rule."""
    params = JobParams()
    assert denoising_steps(params.steps, params.strength) >= 1
    job = Job("d", Task.REFINE, params)
    params.check_strength(job.task, Limits())
