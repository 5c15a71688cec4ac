"""The conditioning rules of the protocol (conditioning.py, messages.py): what controls,
LoRAs, tiling, outpaint and upscale accept, and the field each refusal names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    ErrorCode,
    Job,
    JobParams,
    Limits,
    LoraRef,
    ModelInfo,
    ProtocolError,
    Task,
    Tile,
    decode_client_message,
    encode_bytes,
)
from sfumato.protocol.conditioning import MAX_CONTROLS, MAX_LORAS


def a(shape: tuple[int, int, int], dtype: Any = np.uint8) -> Array:
    return Array.from_numpy(np.zeros(shape, dtype))


IMAGE = a((16, 16, 3))


def refused(job: Job, limits: Limits | None = None) -> tuple[ErrorCode, str | None]:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(encode_bytes(job), limits)
    return info.value.code, info.value.field


def generate(*controls: Control, **params: Any) -> Job:
    return Job("j1", Task.GENERATE, JobParams(width=64, height=64, **params), controls=controls)


def test_a_full_conditioned_job_round_trips() -> None:
    depth = Control(ControlKind.DEPTH, a((16, 16, 1), np.float32), a((16, 16, 1)), 0.5, 0.1, 0.9)
    normal = Control(ControlKind.NORMAL, a((16, 16, 3), np.float16))
    canny = Control(ControlKind.CANNY, a((16, 16, 4)), preprocess=True)
    job = generate(depth, normal, canny, loras=(LoraRef("a", 0.5), LoraRef("b", -1.0)),
                   tile=Tile.X, preview_every=3)  # fmt: skip
    assert decode_client_message(encode_bytes(job)) == job


@pytest.mark.parametrize(
    ("control", "code", "field"),
    [
        (Control(ControlKind.DEPTH, a((16, 16, 3), np.float32)), ErrorCode.BAD_ARRAY, "inputs.controls[0].image"),
        (Control(ControlKind.CANNY, a((16, 16, 1), np.float32)), ErrorCode.BAD_ARRAY, "inputs.controls[0].image"),
        (Control(ControlKind.POSE, a((16, 16, 2))), ErrorCode.BAD_ARRAY, "inputs.controls[0].image"),
        (Control(ControlKind.NORMAL, a((16, 16, 3), np.float32), preprocess=True),
         ErrorCode.BAD_FIELD, "inputs.controls[0].preprocess"),
        (Control(ControlKind.CANNY, a((16, 16, 1)), a((16, 16, 1))), ErrorCode.BAD_FIELD, "inputs.controls[0].mask"),
        (Control(ControlKind.DEPTH, a((16, 16, 1), np.float32), a((8, 16, 1))),
         ErrorCode.BAD_ARRAY, "inputs.controls[0].mask"),
        (Control(ControlKind.DEPTH, a((16, 16, 1)), start=0.6, end=0.4), ErrorCode.BAD_FIELD, "inputs.controls[0].start"),
        (Control(ControlKind.DEPTH, a((16, 16, 1)), strength=2.5), ErrorCode.BAD_FIELD, "inputs.controls[0].strength"),
    ],
)  # fmt: skip
def test_bad_controls_name_their_field(control: Control, code: ErrorCode, field: str) -> None:
    assert refused(generate(control)) == (code, field)


def test_control_limits() -> None:
    many = tuple(Control(ControlKind.CANNY, a((8, 8, 1))) for _ in range(MAX_CONTROLS + 1))
    assert refused(generate(*many)) == (ErrorCode.BAD_FIELD, "inputs.controls")
    big = Control(ControlKind.CANNY, a((8, 80, 1)))
    limits = Limits(max_image_side=64)
    assert refused(generate(big), limits) == (ErrorCode.IMAGE_TOO_LARGE, "inputs.controls[0].image")


def test_lora_rules() -> None:
    twice = (LoraRef("a"), LoraRef("a", 0.5))
    assert refused(generate(loras=twice)) == (ErrorCode.BAD_FIELD, "params.loras")
    many = tuple(LoraRef(f"l{i}") for i in range(MAX_LORAS + 1))
    assert refused(generate(loras=many)) == (ErrorCode.BAD_FIELD, "params.loras")
    assert refused(generate(loras=(LoraRef("a", 5.0),)))[0] is ErrorCode.BAD_FIELD


def test_outpaint_needs_margins_and_fits_the_limit() -> None:
    none = Job("j1", Task.OUTPAINT, JobParams(), image=IMAGE)
    assert refused(none) == (ErrorCode.BAD_FIELD, "params.expand")
    wide = Job("j1", Task.OUTPAINT, JobParams(expand=(0, 0, 60, 0)), image=IMAGE)
    assert refused(wide, Limits(max_image_side=64)) == (ErrorCode.IMAGE_TOO_LARGE, "params.expand")
    ok = Job("j1", Task.OUTPAINT, JobParams(expand=(8, 0, 8, 0)), image=IMAGE)
    assert decode_client_message(encode_bytes(ok)) == ok
    assert refused(Job("j1", Task.OUTPAINT, JobParams(expand=(8, 0, 8, 0))))[1] == "inputs.image"


def test_upscale_scale_range_and_result_size() -> None:
    assert refused(Job("j1", Task.UPSCALE, JobParams(scale=5), image=IMAGE))[1] == "params.scale"
    big = Job("j1", Task.UPSCALE, JobParams(scale=4), image=a((20, 20, 3)))
    assert refused(big, Limits(max_image_side=64)) == (ErrorCode.IMAGE_TOO_LARGE, "params.scale")
    ok = Job("j1", Task.UPSCALE, JobParams(scale=3), image=IMAGE)
    assert decode_client_message(encode_bytes(ok)) == ok


def test_preview_every_is_bounded_by_max_steps() -> None:
    assert refused(generate(preview_every=151)) == (ErrorCode.BAD_FIELD, "params.preview_every")


def test_model_info_carries_the_control_kind_only_for_controlnets() -> None:
    cn = ModelInfo("d", "sd15", "controlnet", control="depth")
    assert cn.to_wire()["control"] == "depth"
    assert "control" not in ModelInfo("b", "sd15", "base").to_wire()
