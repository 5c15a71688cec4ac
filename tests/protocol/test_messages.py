"""Client → server messages: round trips, and each rejection with its code and field path."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    Array,
    Cancel,
    ClientMessage,
    DType,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    JobParams,
    Limits,
    ProtocolError,
    Task,
    decode_client_message,
    encode_bytes,
)

from .strategies import FAST, client_messages, job_params, jobs

IMAGE = {"dtype": "uint8", "shape": [2, 2, 3], "offset": 0}
MASK = {"dtype": "uint8", "shape": [2, 2, 1], "offset": 12}
PIXELS = bytes(range(12)) + b"\xff\x00\x00\xff"


def message(fields: dict[str, Any], tail: bytes = b"") -> bytes:
    return msgpack.packb({"v": 1, **fields}, use_bin_type=True) + tail


def job(task: str = "inpaint", tail: bytes = PIXELS, /, **fields: Any) -> bytes:
    header: dict[str, Any] = {"type": "job", "id": "j1", "task": task}
    if task != "generate":
        header["inputs"] = {"image": IMAGE, "mask": MASK} if task == "inpaint" else {"image": IMAGE}
    return message({**header, **fields}, tail)


def rejected(data: bytes, limits: Limits | None = None) -> tuple[ErrorCode, str | None]:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(data, limits)
    return info.value.code, info.value.field


# ----------------------------------------------------------------------------- round trips


@FAST
@given(client_messages)
def test_round_trip(m: ClientMessage) -> None:
    wire = encode_bytes(m)
    assert decode_client_message(wire) == m
    assert decode_client_message(bytearray(wire)) == m
    assert decode_client_message(memoryview(wire)) == m


@FAST
@given(jobs())
def test_job_round_trip_keeps_optional_fields_absent(m: Job) -> None:
    decoded = decode_client_message(encode_bytes(m))
    assert isinstance(decoded, Job)
    assert (decoded.params.seed is None, decoded.params.model is None) == (
        m.params.seed is None,
        m.params.model is None,
    )
    assert (decoded.image is None, decoded.mask is None) == (m.image is None, m.mask is None)


@FAST
@given(job_params)
def test_params_round_trip(params: JobParams) -> None:
    m = Job("j1", Task.GENERATE, params)
    assert decode_client_message(encode_bytes(m)) == m


def test_defaults() -> None:
    assert decode_client_message(job("generate")) == Job("j1", Task.GENERATE, JobParams())
    assert decode_client_message(message({"type": "hello", "client": "k"})) == Hello("k")
    assert JobParams() == JobParams(
        prompt="", negative="", width=512, height=512, steps=20, guidance=7.0, seed=None,
        strength=0.75, variants=1, model=None,
    )  # fmt: skip


def test_integer_guidance_reads_as_float() -> None:
    decoded = decode_client_message(job("generate", params={"guidance": 7}))
    assert isinstance(decoded, Job)
    assert isinstance(decoded.params.guidance, float) and decoded.params.guidance == 7.0


# ----------------------------------------------------------------------------- hello


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "client"),
        ({"client": 5}, "client"),
        ({"client": "x" * 201}, "client"),
        ({"client": "k", "version": 1}, "version"),
        ({"client": "k", "token": b"s3cret"}, "token"),
        ({"client": "k", "token": "t" * 1001}, "token"),
        ({"client": "k", "client_id": "c" * 201}, "client_id"),
        ({"client": "k", "capabilities": ["control"]}, "capabilities"),
    ],
)
def test_hello_rejected(fields: dict[str, Any], field: str) -> None:
    assert rejected(message({"type": "hello", **fields})) == (ErrorCode.BAD_FIELD, field)


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize("kind", ["job", "cancel", "fetch"])
@pytest.mark.parametrize(
    "job_id", ["", "a" * 65, "abc\n", ".", "..", ".hidden", "-rf", "a b", "a/b", "é", 7]
)
def test_bad_job_id(kind: str, job_id: Any) -> None:
    data = job("generate", id=job_id) if kind == "job" else message({"type": kind, "id": job_id})
    assert rejected(data) == (ErrorCode.BAD_FIELD, "id")


@pytest.mark.parametrize("job_id", ["a", "_", "a" * 64, "2024-01-01T12.00_x", "A.b-C_9"])
def test_good_job_id(job_id: str) -> None:
    assert decode_client_message(message({"type": "cancel", "id": job_id})) == Cancel(job_id)
    assert decode_client_message(message({"type": "fetch", "id": job_id})) == Fetch(job_id)


# ----------------------------------------------------------------------------- job fields


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"task": "sharpen"}, ErrorCode.BAD_FIELD, "task"),
        ({"task": None}, ErrorCode.BAD_FIELD, "task"),
        ({"params": [1, 2]}, ErrorCode.BAD_FIELD, "params"),
        ({"params": {"width": 4}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": 100}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": 56}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": "512"}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": 512.0}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": True}}, ErrorCode.BAD_FIELD, "params.width"),
        ({"params": {"width": 4104}}, ErrorCode.IMAGE_TOO_LARGE, "params.width"),
        ({"params": {"height": 8192}}, ErrorCode.IMAGE_TOO_LARGE, "params.height"),
        ({"params": {"height": 2**40}}, ErrorCode.BAD_FIELD, "params.height"),
        ({"params": {"steps": 0}}, ErrorCode.BAD_FIELD, "params.steps"),
        ({"params": {"steps": 151}}, ErrorCode.BAD_FIELD, "params.steps"),
        ({"params": {"guidance": float("nan")}}, ErrorCode.BAD_FIELD, "params.guidance"),
        ({"params": {"guidance": float("inf")}}, ErrorCode.BAD_FIELD, "params.guidance"),
        ({"params": {"guidance": -0.5}}, ErrorCode.BAD_FIELD, "params.guidance"),
        ({"params": {"guidance": 50.5}}, ErrorCode.BAD_FIELD, "params.guidance"),
        ({"params": {"guidance": "7"}}, ErrorCode.BAD_FIELD, "params.guidance"),
        ({"params": {"seed": -1}}, ErrorCode.BAD_FIELD, "params.seed"),
        ({"params": {"seed": 2**32}}, ErrorCode.BAD_FIELD, "params.seed"),
        ({"params": {"strength": 1.01}}, ErrorCode.BAD_FIELD, "params.strength"),
        ({"params": {"variants": 0}}, ErrorCode.BAD_FIELD, "params.variants"),
        ({"params": {"variants": 17}}, ErrorCode.BAD_FIELD, "params.variants"),
        ({"params": {"prompt": "x" * 4001}}, ErrorCode.BAD_FIELD, "params.prompt"),
        ({"params": {"negative": "x" * 4001}}, ErrorCode.BAD_FIELD, "params.negative"),
        ({"params": {"prompt": ["a", "door"]}}, ErrorCode.BAD_FIELD, "params.prompt"),
        ({"params": {"model": 5}}, ErrorCode.BAD_FIELD, "params.model"),
        ({"params": {"sampler": "euler"}}, ErrorCode.BAD_FIELD, "params.sampler"),
        ({"priority": 1}, ErrorCode.BAD_FIELD, "priority"),
    ],
)
def test_job_field_rejected(fields: dict[str, Any], code: ErrorCode, field: str) -> None:
    assert rejected(job("generate", **fields)) == (code, field)


def test_limits_are_the_servers() -> None:
    """The same message passes or fails by the limits the decoding side holds."""
    data = job("generate", params={"steps": 30, "variants": 4, "prompt": "é" * 100})
    assert isinstance(decode_client_message(data), Job)
    assert rejected(data, Limits(max_steps=25)) == (ErrorCode.BAD_FIELD, "params.steps")
    assert rejected(data, Limits(max_variants=3)) == (ErrorCode.BAD_FIELD, "params.variants")
    # characters, not UTF-8 bytes (the 100 "é" are 200 bytes)
    assert isinstance(decode_client_message(data, Limits(max_prompt_chars=100)), Job)
    assert rejected(data, Limits(max_prompt_chars=99)) == (ErrorCode.BAD_FIELD, "params.prompt")
    wide = job("generate", params={"width": 512})
    assert rejected(wide, Limits(max_image_side=256)) == (
        ErrorCode.IMAGE_TOO_LARGE,
        "params.width",
    )


@FAST
@given(st.integers(64, 8192))
def test_default_size_fits_the_server(side: int) -> None:
    """An absent width or height is 512, or max_image_side rounded down to a multiple of 8
    where that is smaller: a job that leaves them out always fits the server it is sent to."""
    decoded = decode_client_message(job("generate"), Limits(max_image_side=side))
    assert isinstance(decoded, Job)
    expected = min(512, side - side % 8)
    assert decoded.params.width == decoded.params.height == expected


# ----------------------------------------------------------------------------- inputs


def test_inpaint_decodes() -> None:
    decoded = decode_client_message(job("inpaint"))
    assert decoded == Job(
        "j1",
        Task.INPAINT,
        image=Array(DType.UINT8, (2, 2, 3), bytes(range(12))),
        mask=Array(DType.UINT8, (2, 2, 1), b"\xff\x00\x00\xff"),
    )


def test_refine_refuses_a_mask_it_would_ignore() -> None:
    with pytest.raises(ProtocolError) as err:
        decode_client_message(job("refine", inputs={"image": IMAGE, "mask": MASK}))
    assert err.value.code is ErrorCode.BAD_FIELD and err.value.field == "inputs.mask"
    assert "inpaint" in err.value.message


def ref(**changes: Any) -> dict[str, Any]:
    return {**IMAGE, **changes}


@pytest.mark.parametrize(
    ("task", "inputs", "tail", "code", "field"),
    [
        ("generate", {"image": IMAGE}, PIXELS, ErrorCode.BAD_FIELD, "inputs.image"),
        ("generate", {"mask": MASK}, PIXELS, ErrorCode.BAD_FIELD, "inputs.mask"),
        ("refine", {}, b"", ErrorCode.BAD_FIELD, "inputs.image"),
        ("refine", None, b"", ErrorCode.BAD_FIELD, "inputs.image"),
        ("inpaint", {"image": IMAGE}, PIXELS, ErrorCode.BAD_FIELD, "inputs.mask"),
        ("inpaint", {"mask": MASK}, PIXELS, ErrorCode.BAD_FIELD, "inputs.image"),
        ("refine", [IMAGE], PIXELS, ErrorCode.BAD_FIELD, "inputs"),
        # the planned control inputs are unknown to v1: a typo and a missing feature look alike
        ("refine", {"image": IMAGE, "depth": IMAGE}, PIXELS, ErrorCode.BAD_FIELD, "inputs.depth"),
        # wrong kind of image
        ("refine", {"image": ref(dtype="uint16", shape=[2, 1, 3])}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(dtype="float32", shape=[1, 1, 3])}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[2, 3, 2])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[12, 1, 1])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("inpaint", {"image": IMAGE, "mask": {**MASK, "shape": [1, 1, 3], "offset": 0}}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.mask"),
        ("inpaint", {"image": IMAGE, "mask": {**MASK, "shape": [1, 2, 1]}}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.mask"),
        ("inpaint", {"image": IMAGE, "mask": {**MASK, "shape": [2, 1, 1]}}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.mask"),
        # malformed references
        ("refine", {"image": ref(dtype="int32")}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image.dtype"),
        ("refine", {"image": {"shape": [2, 2, 3], "offset": 0}}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.image.dtype"),
        ("refine", {"image": ref(shape=[2, 2])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[2, 2, 3, 1])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[0, 2, 3])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[2, 2, 5])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape=[2, 2.0, 3])}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(shape="2x2x3")}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(offset=-1)}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image.offset"),
        ("refine", {"image": ref(offset="0")}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image.offset"),
        ("refine", {"image": ref(offset=5)}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(offset=2**63)}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image.offset"),
        ("refine", {"image": IMAGE}, PIXELS[:11], ErrorCode.BAD_ARRAY, "inputs.image"),
        ("refine", {"image": ref(colorspace="linear")}, PIXELS,
         ErrorCode.BAD_ARRAY, "inputs.image.colorspace"),
        ("refine", {"image": "0:12"}, PIXELS, ErrorCode.BAD_ARRAY, "inputs.image"),
    ],
    ids=lambda v: f"{len(v)}B" if isinstance(v, bytes) else None,
)  # fmt: skip
def test_inputs_rejected(task: str, inputs: Any, tail: bytes, code: ErrorCode, field: str) -> None:
    assert rejected(job(task, tail, inputs=inputs)) == (code, field)


def test_image_too_large_per_side() -> None:
    limits = Limits(max_image_side=64)
    params = {"width": 64, "height": 64}
    for shape in ([65, 1, 3], [1, 65, 3]):
        data = job("refine", bytes(195), params=params, inputs={"image": ref(shape=shape)})
        assert rejected(data, limits) == (ErrorCode.IMAGE_TOO_LARGE, "inputs.image")
    data = job("refine", bytes(192), params=params, inputs={"image": ref(shape=[64, 1, 3])})
    assert isinstance(decode_client_message(data, limits), Job)


def test_arrays_may_share_or_skip_payload_bytes() -> None:
    """References are independent: v1 does not require the blobs to tile the payload."""
    data = job("inpaint", bytes(range(20)), inputs={"image": ref(offset=4), "mask": MASK})
    decoded = decode_client_message(data)
    assert isinstance(decoded, Job) and decoded.image is not None and decoded.mask is not None
    assert bytes(decoded.image.data) == bytes(range(4, 16))
    assert bytes(decoded.mask.data) == bytes(range(12, 16))


def test_default_steps_respect_a_smaller_server_limit() -> None:
    decoded = decode_client_message(job("generate"), Limits(max_steps=8))
    assert isinstance(decoded, Job) and decoded.params.steps == 8
    assert decode_client_message(job("generate")).params.steps == 20
