"""Server → client messages: round trips, leniency towards newer servers, strict types."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given

from sfumato.protocol import (
    Array,
    DType,
    Error,
    ErrorCode,
    Limits,
    ModelInfo,
    Models,
    Progress,
    ProtocolError,
    Result,
    ServerMessage,
    Task,
    Welcome,
    decode_server_message,
    encode_bytes,
)

from .strategies import FAST, server_messages

MODEL = {"name": "tiny-sd", "family": "tiny-sd", "kind": "base"}


def message(fields: dict[str, Any], tail: bytes = b"") -> bytes:
    return msgpack.packb({"v": 1, **fields}, use_bin_type=True) + tail


def rejected(data: bytes) -> tuple[ErrorCode, str | None]:
    with pytest.raises(ProtocolError) as info:
        decode_server_message(data)
    return info.value.code, info.value.field


@FAST
@given(server_messages)
def test_round_trip(m: ServerMessage) -> None:
    assert decode_server_message(encode_bytes(m)) == m


def test_result_arrays_of_every_dtype() -> None:
    images = tuple(
        Array(dtype, (2, 3, c), bytes(range(6 * c * dtype.itemsize)))
        for c, dtype in enumerate(DType, start=1)
    )
    m = Result("j1", Task.GENERATE, images, (1, 2, 3, 4), "tiny-sd")
    decoded = decode_server_message(encode_bytes(m))
    assert isinstance(decoded, Result)
    assert [(a.dtype, a.shape) for a in decoded.images] == [(a.dtype, a.shape) for a in images]
    assert decoded == m


def test_defaults_of_optional_fields() -> None:
    welcome = decode_server_message(message({"type": "welcome", "server": "s", "protocol": 1}))
    assert welcome == Welcome("s", 1)
    assert welcome.limits == Limits()  # a server that announces nothing has the default limits
    progress = decode_server_message(
        message({"type": "progress", "id": "j", "step": 0, "total": 4})
    )
    assert progress == Progress("j", 0, 4, "denoise", None)
    assert decode_server_message(message({"type": "models", "models": [MODEL]})) == Models(
        (ModelInfo("tiny-sd", "tiny-sd", "base"),)
    )


# ----------------------------------------------------------------------------- leniency


def test_unknown_fields_tolerated() -> None:
    """A newer server may add fields anywhere in its maps; an older client reads on."""
    data = message(
        {
            "type": "welcome", "server": "s", "protocol": 1, "gpu": "H100",
            "models": [{**MODEL, "vae_hint": "fp16-fix"}],
            "limits": {"max_steps": 50, "max_loras": 4},
        }
    )  # fmt: skip
    welcome = decode_server_message(data)
    assert isinstance(welcome, Welcome)
    assert welcome.models == (ModelInfo("tiny-sd", "tiny-sd", "base"),)
    assert welcome.limits == Limits(max_steps=50)


def test_array_references_stay_strict() -> None:
    """An unknown key in an array reference may change what the bytes mean (a colour space,
    a compression): the client refuses rather than misreads pixels."""
    preview = {"dtype": "uint8", "shape": [1, 1, 3], "offset": 0, "compression": "zstd"}
    data = message({"type": "progress", "id": "j", "step": 1, "total": 2, "preview": preview})
    assert rejected(data + b"abc") == (ErrorCode.BAD_ARRAY, "preview.compression")


def test_unknown_error_code_reads_as_internal() -> None:
    data = message({"type": "error", "code": "gpu_on_fire", "message": "the GPU is on fire"})
    assert decode_server_message(data) == Error(ErrorCode.INTERNAL, "the GPU is on fire")


def test_error_code_defaults_to_internal() -> None:
    assert decode_server_message(message({"type": "error"})) == Error(ErrorCode.INTERNAL, "")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_round_trips(code: ErrorCode) -> None:
    m = Error(code, f"{code.value} happened", id="j1")
    assert decode_server_message(encode_bytes(m)) == m


# ----------------------------------------------------------------------------- strict types


WELCOME = {"type": "welcome", "server": "s", "protocol": 1}


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({**WELCOME, "protocol": "1"}, ErrorCode.BAD_FIELD, "protocol"),
        ({**WELCOME, "server": None}, ErrorCode.BAD_FIELD, "server"),
        ({**WELCOME, "capabilities": "generate"}, ErrorCode.BAD_FIELD, "capabilities"),
        ({**WELCOME, "limits": [256]}, ErrorCode.BAD_FIELD, "limits"),
        ({**WELCOME, "limits": {"max_steps": "50"}}, ErrorCode.BAD_FIELD, "limits.max_steps"),
        ({**WELCOME, "limits": {"max_steps": 1e400}}, ErrorCode.BAD_FIELD, "limits.max_steps"),
        ({**WELCOME, "limits": {"max_steps": -1}}, ErrorCode.BAD_FIELD, "limits.max_steps"),
        ({**WELCOME, "limits": {"max_steps": True}}, ErrorCode.BAD_FIELD, "limits.max_steps"),
        ({**WELCOME, "models": {"tiny": MODEL}}, ErrorCode.BAD_FIELD, "models"),
        ({**WELCOME, "models": ["tiny-sd"]}, ErrorCode.BAD_FIELD, "models[0]"),
        ({**WELCOME, "models": [{"name": "x"}]}, ErrorCode.BAD_FIELD, "models[0].family"),
        ({**WELCOME, "models": [MODEL, {**MODEL, "approved": "no"}]}, ErrorCode.BAD_FIELD,
         "models[1].approved"),
        ({**WELCOME, "models": [{**MODEL, "tiny": 0}]}, ErrorCode.BAD_FIELD, "models[0].tiny"),
        ({"type": "accepted", "id": "j", "position": -1}, ErrorCode.BAD_FIELD, "position"),
        ({"type": "accepted", "id": "../j", "position": 0}, ErrorCode.BAD_FIELD, "id"),
        ({"type": "progress", "id": "j", "step": 1}, ErrorCode.BAD_FIELD, "total"),
        ({"type": "progress", "id": "j", "step": 1.5, "total": 2}, ErrorCode.BAD_FIELD, "step"),
        ({"type": "progress", "id": "j", "step": 1, "total": 2, "preview": 5},
         ErrorCode.BAD_ARRAY, "preview"),
        ({"type": "result", "id": "j", "task": "generate", "seeds": [], "model": "m"},
         ErrorCode.BAD_FIELD, "images"),
        ({"type": "result", "id": "j", "task": "generate", "images": [], "seeds": [-1],
          "model": "m"}, ErrorCode.BAD_FIELD, "seeds"),
        ({"type": "result", "id": "j", "task": "generate", "images": [], "seeds": [],
          "model": "m", "tiny": "yes"}, ErrorCode.BAD_FIELD, "tiny"),
        ({"type": "result", "id": "j", "task": "generate", "images": [], "seeds": [],
          "model": "m", "timings": {"run": "1s"}}, ErrorCode.BAD_FIELD, "timings.run"),
        ({"type": "result", "id": "j", "task": "generate", "images": [{"dtype": "uint8",
          "shape": [1, 1, 3], "offset": 0}], "seeds": [1], "model": "m"}, ErrorCode.BAD_ARRAY,
         "images[0]"),
        ({"type": "error", "code": 5}, ErrorCode.BAD_FIELD, "code"),
        ({"type": "cancelled"}, ErrorCode.BAD_FIELD, "id"),
    ],
)  # fmt: skip
def test_rejected(fields: dict[str, Any], code: ErrorCode, field: str) -> None:
    assert rejected(message(fields)) == (code, field)
