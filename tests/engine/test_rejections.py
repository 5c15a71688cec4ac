"""The engine's rejections are typed: each carries its wire code and the field it is about, so
the worker sends them as they are; anything else the engine meets stays an ordinary
exception (a bug, logged with its traceback by the worker)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.engine import Engine
from sfumato.protocol import ErrorCode, JobRejected, Task

from ..protocol.strategies import FAST
from .helpers import box_mask, job, picture, run


@settings(FAST, max_examples=8)
@given(
    side=st.tuples(st.integers(64, 96), st.integers(64, 96)),
    off=st.tuples(st.integers(-8, 8), st.integers(-8, 8)).filter(lambda d: d != (0, 0)),
)
def test_a_mask_of_another_size_is_a_bad_array_naming_inputs_mask(
    engine: Engine, side: tuple[int, int], off: tuple[int, int]
) -> None:
    (h, w), (dh, dw) = side, off
    inpaint = job(Task.INPAINT, image=picture(h, w), mask=box_mask(h + dh, w + dw, (0, 0, 8, 8)))
    with pytest.raises(JobRejected) as caught:
        run(engine, inpaint)
    assert (caught.value.code, caught.value.field) == (ErrorCode.BAD_ARRAY, "inputs.mask")
    assert f"{w}×{h}" in caught.value.message and "send a mask of the image's size" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("task", "image", "mask", "code", "field"),
    [
        (Task.REFINE, None, None, ErrorCode.BAD_FIELD, "inputs.image"),
        (Task.UPSCALE, None, None, ErrorCode.BAD_FIELD, "inputs.image"),
        (Task.INPAINT, picture(64, 64), None, ErrorCode.BAD_FIELD, "inputs.mask"),
        (Task.REFINE, np.zeros((64, 64, 2), np.uint8), None, ErrorCode.BAD_ARRAY, "inputs.image"),
    ],
)
def test_inputs_a_task_cannot_take_are_rejected_with_their_field(
    engine: Engine,
    task: Task,
    image: np.ndarray | None,
    mask: np.ndarray | None,
    code: ErrorCode,
    field: str,
) -> None:
    """Jobs built by hand, past the decoder's checks: the engine names the same field."""
    with pytest.raises(JobRejected) as caught:
        run(engine, job(task, image=image, mask=mask, scale=2))
    assert (caught.value.code, caught.value.field) == (code, field)
    assert field in caught.value.message


def test_a_non_base_model_is_rejected_as_unknown_model(engine: Engine) -> None:
    with pytest.raises(JobRejected) as caught:
        engine.load("tiny-sd-depth")
    assert (caught.value.code, caught.value.field) == (ErrorCode.UNKNOWN_MODEL, "params.model")
