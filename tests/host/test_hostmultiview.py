"""The host-neutral multiview job builder and result reader, with inputs we did not choose:
any number of views and sizes the protocol allows is built into a job that encodes and
decodes to itself; what a server would refuse is refused before sending, naming the field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato import hostmultiview
from sfumato.hostoffer import HostError, Offer
from sfumato.protocol import (
    Array,
    Coverage,
    DType,
    JobParams,
    Limits,
    Result,
    Task,
)
from sfumato.protocol.codec import decode_client_message, encode_bytes

CAPS = ("generate", "inpaint", "control", "multiview")
IDENTITY = tuple(float(v) for v in (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1))
PERSPECTIVE = (2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, -1.0, -0.2, 0.0, 0.0, -1.0, 0.0)


def array(dtype: DType, width: int, height: int, channels: int) -> Array:
    size = 4 if dtype is DType.FLOAT32 else 1
    return Array(dtype, (height, width, channels), bytes(width * height * channels * size))


def view(width: int, height: int) -> hostmultiview.ViewPasses:
    return hostmultiview.ViewPasses(
        array(DType.FLOAT32, width, height, 1),
        array(DType.FLOAT32, width, height, 3),
        array(DType.FLOAT32, width, height, 2),
        array(DType.UINT8, width, height, 1),
        IDENTITY,
        PERSPECTIVE,
    )


def maps(side: int) -> tuple[Array, Array, Array]:
    return (
        array(DType.FLOAT32, side, side, 3),
        array(DType.FLOAT32, side, side, 3),
        array(DType.UINT8, side, side, 1),
    )


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 16),
    width=st.integers(8, 12).map(lambda n: n * 8),
    height=st.integers(8, 12).map(lambda n: n * 8),
    side=st.integers(8, 16).map(lambda n: n * 8),
)
def test_any_allowed_job_is_built_and_round_trips(
    count: int, width: int, height: int, side: int
) -> None:
    offer = Offer(CAPS, Limits())
    params = JobParams(prompt="oak", width=width, height=height, steps=2)
    job = hostmultiview.multiview_job(
        "j1", params, [view(width, height)] * count, *maps(side), offer
    )
    assert job.task is Task.MULTIVIEW and job.multiview is not None
    assert len(job.multiview.views) == count and job.multiview.texture_size == (side, side)
    again = decode_client_message(encode_bytes(job))
    assert again == job


def test_what_the_server_would_refuse_is_refused_before_sending() -> None:
    params = JobParams(width=64, height=64, steps=2)
    with pytest.raises(HostError, match="no 'multiview' capability"):
        hostmultiview.multiview_job(
            "j", params, [view(64, 64)], *maps(64), Offer(("generate",), Limits())
        )
    offer = Offer(CAPS, Limits())
    with pytest.raises(HostError, match="no texture cameras") as none:
        hostmultiview.multiview_job("j", params, [], *maps(64), offer)
    assert none.value.field == "inputs.views"
    with pytest.raises(HostError, match=r"17 texture cameras, but .* at most 16"):
        hostmultiview.multiview_job("j", params, [view(64, 64)] * 17, *maps(64), offer)
    with pytest.raises(HostError) as wrong:  # a pass not of the view size
        hostmultiview.multiview_job("j", params, [view(72, 64)], *maps(64), offer)
    assert wrong.value.field == "inputs.views[0].depth"
    small = Offer(CAPS, Limits(max_image_side=96))
    with pytest.raises(HostError) as big:
        hostmultiview.multiview_job("j", params, [view(64, 64)], *maps(128), small)
    assert big.value.field == "inputs.position"


def test_the_result_is_taken_apart_and_said_in_one_line() -> None:
    texture = array(DType.UINT8, 32, 32, 4)
    views = (array(DType.UINT8, 64, 64, 3),) * 2
    result = Result(
        "j",
        Task.MULTIVIEW,
        (texture, *views),
        (5,),
        "tiny-sd",
        coverage=Coverage(0.978, (0.7, 0.278)),
    )
    read = hostmultiview.read(result, 2)
    assert read.texture == texture and read.views == views
    assert (read.covered, read.per_view) == (0.978, (0.7, 0.278))
    assert hostmultiview.coverage_line(0.978, 0.022) == "97.8 % covered; 2.2 % filled"
    with pytest.raises(ValueError, match="has 3 images, not the texture and 3 views"):
        hostmultiview.read(result, 3)
    flat = Result("j", Task.MULTIVIEW, (array(DType.UINT8, 32, 32, 3), *views), (5,), "tiny-sd")
    with pytest.raises(ValueError, match="3 channels, not RGBA"):
        hostmultiview.read(flat, 2)
