"""The Krita plugin's rectangle arithmetic (sfumato_krita/jobs.py), pure and without Krita,
under hypothesis: the region a selection grows to, the job's size rounded to the latent grid,
the crop of a result back to the region, and Expand's margins mask — at canvas, selection and
padding sizes nobody chose."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from sfumato_krita.jobs import (
    MIN_SIDE,
    CanvasInput,
    Mode,
    PluginError,
    Rect,
    Request,
    build_job,
    crop,
    margins_mask,
    placement_for,
    region_for,
    round_up8,
)

from sfumato.protocol import Array, Result, Task

from ..protocol.strategies import FAST


@st.composite
def canvases_and_selections(draw: st.DrawFn) -> tuple[int, int, Rect]:
    """A canvas (1 … 3000 a side) and a selection's bounds inside it."""
    width, height = draw(st.integers(1, 3000)), draw(st.integers(1, 3000))
    x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
    w, h = draw(st.integers(1, width - x)), draw(st.integers(1, height - y))
    return width, height, Rect(x, y, w, h)


def spans(rect: Rect) -> tuple[tuple[int, int], tuple[int, int]]:
    return (rect.x, rect.x + rect.width), (rect.y, rect.y + rect.height)


@FAST
@given(canvases_and_selections(), st.integers(0, 512))
def test_a_selection_grows_by_its_padding_then_to_the_smallest_side_inside_the_canvas(
    canvas: tuple[int, int, Rect], pad: int
) -> None:
    width, height, selection = canvas
    region = selection.grown(pad, width, height)
    for (lo, hi), (sel_lo, sel_hi), bound in zip(
        spans(region), spans(selection), (width, height), strict=True
    ):
        assert 0 <= lo < hi <= bound  # inside the canvas
        want_lo, want_hi = max(0, sel_lo - pad), min(bound, sel_hi + pad)
        assert lo <= want_lo and want_hi <= hi  # the selection and its context, all of it
        # exactly that, unless it is under the smallest side the server makes and the
        # canvas has room: then exactly the smallest side (or the whole canvas)
        assert hi - lo == max(want_hi - want_lo, min(MIN_SIDE, bound))
        if lo > 0 and hi < bound:  # widened evenly on both sides, where the canvas allows
            assert abs((want_lo - lo) - (hi - want_hi)) <= 1


@FAST
@given(canvases_and_selections(), st.integers(0, 128), st.sampled_from(list(Mode)))
def test_the_region_is_the_grown_selection_or_the_whole_canvas(
    canvas: tuple[int, int, Rect], pad: int, mode: Mode
) -> None:
    width, height, selection = canvas
    whole = Rect(0, 0, width, height)
    assert region_for(mode, width, height, None, pad) == whole
    got = region_for(mode, width, height, selection, pad)
    if mode in (Mode.EXPAND, Mode.UPSCALE):
        assert got == whole  # they work on all of it, whatever is selected
    else:
        assert got == selection.grown(pad, width, height)


@FAST
@given(st.integers(1, 10_000))
def test_round_up8_is_the_next_latent_multiple_and_at_least_the_smallest_side(n: int) -> None:
    got = round_up8(n)
    assert got % 8 == 0 and got >= max(n, MIN_SIDE)
    assert got - 8 < max(n, MIN_SIDE)  # the next one, not one beyond


def _array(h: int, w: int, c: int, seed: int) -> Array:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    return Array.from_numpy(pixels)


@FAST
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 9), st.integers(0, 9),
       st.sampled_from((1, 3, 4)), st.integers(0, 2**32 - 1))  # fmt: skip
def test_crop_is_the_top_left_of_the_image_bit_for_bit(
    width: int, height: int, extra_w: int, extra_h: int, channels: int, seed: int
) -> None:
    image = _array(height + extra_h, width + extra_w, channels, seed)
    got = crop(image, width, height)
    assert got.shape == (height, width, channels) and got.dtype is image.dtype
    assert np.array_equal(got.to_numpy(), image.to_numpy()[:height, :width])
    if extra_w or extra_h:
        with pytest.raises(PluginError, match="update the plugin or server"):
            crop(crop(image, width, height), width + extra_w, height + extra_h)


@FAST
@given(canvases_and_selections(), st.integers(0, 64), st.integers(1, 3),
       st.sampled_from((Mode.GENERATE, Mode.REFINE, Mode.INPAINT, Mode.BACKGROUND)))  # fmt: skip
def test_a_job_s_result_lands_exactly_on_its_region(
    canvas: tuple[int, int, Rect], pad: int, variants: int, mode: Mode
) -> None:
    width, height, selection = canvas
    region = region_for(mode, width, height, selection, pad)
    if max(region.width, region.height) > 2048:
        region = Rect(region.x, region.y, min(region.width, 2048), min(region.height, 2048))
    generates = mode in (Mode.GENERATE, Mode.BACKGROUND)
    image = None if generates else _array(region.height, region.width, 4, 1)
    inp = CanvasInput(width, height, region, image, None)
    request = Request(mode, prompt="p", seed=5, variants=variants)
    job = build_job(request, inp, ("preview",), "j1")
    assert (job.params.width, job.params.height) == (
        round_up8(region.width),
        round_up8(region.height),
    )
    size = job.output_size()
    if generates:
        assert size == (job.params.width, job.params.height)
    else:
        assert size == (region.width, region.height)  # img2img keeps the region's own size
    images = tuple(_array(size[1], size[0], 3, n) for n in range(variants))
    result = Result("j1", job.task, images, tuple(range(5, 5 + variants)), "tiny-sd")
    placement = placement_for(job, request, inp, result)
    assert len(placement.layers) == variants
    for layer, sent in zip(placement.layers, images, strict=True):
        assert (layer.x, layer.y) == (region.x, region.y)
        assert layer.image.shape == (region.height, region.width, 3)
        assert np.array_equal(
            layer.image.to_numpy(), sent.to_numpy()[: region.height, : region.width]
        )
    assert [layer.visible for layer in placement.layers] == [True] + [False] * (variants - 1)
    if mode is Mode.INPAINT:
        assert job.mask is not None and job.mask.shape == (region.height, region.width, 1)
        assert set(job.mask.data) == {255}  # no selection: the whole region is repainted


@FAST
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 64))
def test_expand_paints_only_the_new_margins(width: int, height: int, expand: int) -> None:
    request = Request(Mode.EXPAND, prompt="p", seed=1, expand=expand)
    inp = CanvasInput(width, height, Rect(0, 0, width, height), _array(height, width, 4, 0), None)
    job = build_job(request, inp, (), "j1")
    assert job.task is Task.OUTPAINT and job.params.expand == (expand,) * 4
    size = job.output_size()
    assert size == (width + 2 * expand, height + 2 * expand)
    result = Result("j1", Task.OUTPAINT, (_array(size[1], size[0], 3, 2),), (1,), "tiny-sd")
    placement = placement_for(job, request, inp, result)
    assert placement.grow == (-expand, -expand, *size)
    (layer,) = placement.layers
    assert layer.alpha is not None and layer.alpha.shape == (size[1], size[0], 1)
    alpha = layer.alpha.to_numpy()[:, :, 0]
    inside = np.zeros_like(alpha, dtype=bool)
    inside[expand : expand + height, expand : expand + width] = True
    assert (alpha[inside] == 0).all() and (alpha[~inside] == 255).all()


@FAST
@given(st.integers(1, 60), st.integers(1, 60), st.data())
def test_margins_mask_is_zero_exactly_over_the_inner_rect(
    width: int, height: int, data: st.DataObject
) -> None:
    x, y = data.draw(st.integers(0, width - 1)), data.draw(st.integers(0, height - 1))
    w, h = data.draw(st.integers(1, width - x)), data.draw(st.integers(1, height - y))
    mask = margins_mask(Rect(0, 0, width, height), Rect(x, y, w, h)).to_numpy()[:, :, 0]
    expected = np.full((height, width), 255, np.uint8)
    expected[y : y + h, x : x + w] = 0
    assert np.array_equal(mask, expected)
