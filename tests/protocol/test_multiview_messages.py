"""Task multiview on the wire (docs/protocol.md 4.2.4): every bad input is refused when the
job is read, with the error code and field the document gives, and nothing else changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    Array,
    DType,
    ErrorCode,
    Job,
    JobParams,
    Limits,
    MultiviewInputs,
    Paint,
    ProtocolError,
    Task,
    Tile,
    View,
    decode_client_message,
    encode,
    encode_bytes,
)

from .strategies import FAST, multiview_jobs

SIDE = 64
IDENTITY = (1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
PERSPECTIVE = (1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, -0.2, 0, 0, -1, 0)


def zeros(dtype: DType, h: int, w: int, c: int) -> Array:
    return Array(dtype, (h, w, c), bytes(h * w * c * dtype.itemsize))


def view(side: int = SIDE, **changes: Any) -> View:
    v = View(
        zeros(DType.FLOAT32, side, side, 1),
        zeros(DType.FLOAT32, side, side, 3),
        zeros(DType.FLOAT32, side, side, 2),
        zeros(DType.UINT8, side, side, 1),
        IDENTITY,
        PERSPECTIVE,
    )
    return replace(v, **changes)


def job(views: tuple[View, ...] = (view(),), texture: int = 8, **params: Any) -> Job:
    maps = MultiviewInputs(
        views,
        zeros(DType.FLOAT32, texture, texture, 3),
        zeros(DType.FLOAT32, texture, texture, 3),
        zeros(DType.UINT8, texture, texture, 1),
    )
    sizes: dict[str, Any] = {"width": SIDE, "height": SIDE}
    return Job("mv", Task.MULTIVIEW, JobParams(**(sizes | params)), multiview=maps)


def refused(frame: bytes, limits: Limits | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame, limits or Limits())
    return caught.value


def edited(message: Job, edit: Any) -> bytes:
    chunks = encode(message)
    header = msgpack.unpackb(bytes(chunks[0]), raw=False)
    edit(header)
    return msgpack.packb(header, use_bin_type=True) + b"".join(bytes(c) for c in chunks[1:])


def test_a_good_job_round_trips() -> None:
    message = job((view(), view()), paint=Paint.POSITION, bounds=(0, 0, 0, 1, 2, 3))
    assert decode_client_message(encode_bytes(message), Limits()) == message


CASES: list[tuple[str, Any, ErrorCode, str]] = [
    ("normal pass of float16", job((view(normal=zeros(DType.FLOAT16, SIDE, SIDE, 3)),)),
     ErrorCode.BAD_ARRAY, "inputs.views[0].normal"),
    ("uv with 3 channels", job((view(uv=zeros(DType.FLOAT32, SIDE, SIDE, 3)),)),
     ErrorCode.BAD_ARRAY, "inputs.views[0].uv"),
    ("mask as float", job((view(), view(mask=zeros(DType.FLOAT32, SIDE, SIDE, 1)))),
     ErrorCode.BAD_ARRAY, "inputs.views[1].mask"),
    ("views of another size", job((view(side=72),)), ErrorCode.BAD_ARRAY, "inputs.views[0].depth"),
    ("a zero projection row", job((view(projection=IDENTITY[:12] + (0.0,) * 4),)),
     ErrorCode.BAD_FIELD, "inputs.views[0].projection"),
    ("no views", job(()), ErrorCode.BAD_FIELD, "inputs.views"),
    ("17 views", job((view(),) * 17), ErrorCode.BAD_FIELD, "inputs.views"),
    ("two variants", job(variants=2), ErrorCode.BAD_FIELD, "params.variants"),
    ("tiling", job(tile=Tile.XY), ErrorCode.BAD_FIELD, "params.tile"),
    ("bounds min above max", job(bounds=(0, 0, 2, 1, 1, 1)), ErrorCode.BAD_FIELD, "params.bounds"),
    ("a view width off the grid", job(width=SIDE + 4), ErrorCode.BAD_FIELD, "params.width"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "message", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_inputs_name_their_field(what: str, message: Job, code: ErrorCode, field: str) -> None:
    error = refused(encode_bytes(message))
    assert (error.code, error.field) == (code, field), error.message
    assert error.message  # says what to do: every message here names the fix
    assert any(word in error.message for word in ("send", "must", "leave", "at most", "try"))


def test_texture_maps_must_match_the_position_map() -> None:
    good = job()
    assert good.multiview is not None
    small = replace(good.multiview, texels=zeros(DType.UINT8, 4, 4, 1))
    error = refused(encode_bytes(replace(good, multiview=small)))
    assert (error.code, error.field) == (ErrorCode.BAD_ARRAY, "inputs.texels")


def test_a_texture_over_max_image_side_is_too_large() -> None:
    error = refused(encode_bytes(job(texture=80)), Limits(max_image_side=72))
    assert (error.code, error.field) == (ErrorCode.IMAGE_TOO_LARGE, "inputs.position")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("inputs", "views", 0, "uv"), "inputs.views[0].uv"),
        (("inputs", "views", 0, "projection"), "inputs.views[0].projection"),
        (("inputs", "surface_normal"), "inputs.surface_normal"),
        (("inputs", "texels"), "inputs.texels"),
    ],
)
def test_a_missing_pass_or_map_is_named(path: tuple[Any, ...], field: str) -> None:
    def drop(header: dict[str, Any]) -> None:
        node: Any = header
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    error = refused(edited(job(), drop))
    assert (error.code, error.field) == (ErrorCode.BAD_FIELD, field)


@given(st.integers(0, 15), st.integers(1, 20))
def test_a_matrix_of_the_wrong_length_is_named(index: int, length: int) -> None:
    def cut(header: dict[str, Any]) -> None:
        header["inputs"]["views"][0]["world_to_camera"] = [1.0] * (length if length != 16 else 17)

    error = refused(edited(job(), cut))
    assert error.field == "inputs.views[0].world_to_camera" and "16" in error.message


def test_multiview_fields_on_another_task_are_refused() -> None:
    mv = job().multiview
    cases = [
        (Job("g", Task.GENERATE, JobParams(), multiview=mv), "inputs.views"),
        (Job("g", Task.GENERATE, JobParams(paint=Paint.POSITION)), "params.paint"),
        (Job("g", Task.GENERATE, JobParams(bounds=(0, 0, 0, 1, 1, 1))), "params.bounds"),
    ]
    for message, field in cases:
        assert refused(encode_bytes(message)).field == field


@FAST
@given(multiview_jobs())
def test_result_bytes_bound_the_texture_and_every_view(message: Job) -> None:
    assert message.multiview is not None
    tw, th = message.multiview.texture_size
    pixels = tw * th * 4 + len(message.multiview.views) * SIDE * SIDE * 3
    assert message.result_bytes() >= pixels
