"""Upscale's tiles and feathered blending, and outpaint's grown canvas (engine/resizing.py), at
sizes hypothesis picks — including 1-pixel images, images smaller than a tile and sides that
do not divide evenly: the tiles cover the image, the blend weights make a partition of unity
with no seams, and the grown canvas keeps every original pixel."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sfumato.engine.resizing import BLEND, OVERLAP_FRACTION, feather, grow, tiles

from ..protocol.strategies import FAST

tile_sides = st.integers(1, 128).map(lambda n: 8 * n)  # 8 … 1024, as an engine may be given


def intervals(boxes: list[tuple[int, int, int, int]], axis: int) -> list[tuple[int, int]]:
    return sorted({(b[axis], b[axis + 2]) for b in boxes})


@FAST
@given(st.integers(1, 5000), st.integers(1, 5000), tile_sides)
def test_tiles_are_a_grid_of_full_tiles_that_covers_the_image(
    width: int, height: int, tile: int
) -> None:
    boxes = tiles((width, height), tile)
    xs, ys = intervals(boxes, 0), intervals(boxes, 1)
    assert sorted(boxes) == sorted((x0, y0, x1, y1) for x0, x1 in xs for y0, y1 in ys)
    assert len(boxes) == len(set(boxes))
    for spans, length in ((xs, width), (ys, height)):
        assert spans[0][0] == 0 and spans[-1][1] == length  # from edge to edge
        side = min(tile, length)
        assert all(end - start == side for start, end in spans)  # no slivers
        overlap = tile // OVERLAP_FRACTION
        for (s0, e0), (s1, _e1) in pairwise(spans):
            assert s0 < s1 <= e0 - overlap  # no gap, at least a quarter of overlap
        step = tile - overlap
        fewest = 1 if length <= tile else -(-(length - tile) // step) + 1
        assert len(spans) == fewest  # no more pipeline calls than the overlap needs


def blend(size: tuple[int, int], tile: int) -> tuple[list, np.ndarray]:
    """Every tile's weights and their sum, as upscale accumulates them."""
    boxes = tiles(size, tile)
    weights = [feather(box, size) for box in boxes]
    total = np.zeros((size[1], size[0], 1))
    for (x0, y0, x1, y1), w in zip(boxes, weights, strict=True):
        assert w.shape == (y1 - y0, x1 - x0, 1)
        assert (w > 0).all() and (w <= 1).all()
        total[y0:y1, x0:x1] += w
    return list(zip(boxes, weights, strict=True)), total


@FAST
@given(st.integers(1, 260), st.integers(1, 260), st.sampled_from((8, 16, 24, 32, 64, 96)),
       st.integers(0, 2**32 - 1))  # fmt: skip
def test_feathered_tiles_are_a_partition_of_unity_without_seams(
    width: int, height: int, tile: int, seed: int
) -> None:
    tiled, total = blend((width, height), tile)
    assert total.min() >= 1 - 1e-9  # every pixel fully covered: no dark or noisy spots
    # Tiles that each return their crop unchanged give back the image exactly.
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.float64)
    out = np.zeros_like(image)
    for (x0, y0, x1, y1), w in tiled:
        out[y0:y1, x0:x1] += image[y0:y1, x0:x1] * w
    assert np.allclose(out / total, image)
    # A tile's share of the result changes by at most one ramp step between neighbours.
    ramp_x = max(1, min(tile, width) // OVERLAP_FRACTION)
    ramp_y = max(1, min(tile, height) // OVERLAP_FRACTION)
    for (x0, y0, x1, y1), w in tiled:
        share = np.zeros_like(total)
        share[y0:y1, x0:x1] = w
        share /= total
        assert np.abs(np.diff(share, axis=1)).max(initial=0) <= 1 / ramp_x + 1e-9
        assert np.abs(np.diff(share, axis=0)).max(initial=0) <= 1 / ramp_y + 1e-9


@FAST
@given(st.integers(1, 48), st.integers(1, 48), st.integers(0, 2**32 - 1))
def test_feather_keeps_full_weight_on_the_image_s_own_edges(
    width: int, height: int, seed: int
) -> None:
    for box, weights in blend((width, height), 16)[0]:
        x0, y0, x1, y1 = box
        w = weights[:, :, 0]
        # no ramp where the tile meets the image's edge: the edge row or column weighs most
        assert x0 or np.allclose(w[:, 0], w.max(axis=1))
        assert x1 != width or np.allclose(w[:, -1], w.max(axis=1))
        assert y0 or np.allclose(w[0], w.max(axis=0))
        assert y1 != height or np.allclose(w[-1], w.max(axis=0))
        if (x0, y0, x1, y1) == (0, 0, width, height):
            assert (w == 1).all()  # one tile: nothing to blend with


expands = st.tuples(*(st.integers(0, 40),) * 4)


@FAST
@given(
    st.integers(1, 96), st.integers(1, 96), expands, st.integers(0, 255), st.integers(0, 2**32 - 1)
)
def test_grow_keeps_the_original_and_masks_exactly_the_margins(
    height: int, width: int, expand: tuple[int, int, int, int], low: int, seed: int
) -> None:
    # a picture in a narrow band of colours, so a fill from elsewhere would show
    high = min(255, low + 24)
    rgb = np.random.default_rng(seed).integers(low, high + 1, (height, width, 3), dtype=np.uint8)
    left, top, right, bottom = expand
    canvas, mask = grow(rgb, expand)
    assert canvas.shape == (height + top + bottom, width + left + right, 3)
    assert canvas.dtype == np.uint8 and mask.dtype == np.uint8
    assert mask.shape == (*canvas.shape[:2], 1)
    inside = np.zeros(canvas.shape[:2], bool)
    inside[top : top + height, left : left + width] = True
    assert np.array_equal(canvas[inside].reshape(rgb.shape), rgb)  # bit for bit
    assert (mask[~inside] == 255).all()
    # The margins start from the picture's own colours (edge pixels, blurred): never grey.
    least, most = rgb.reshape(-1, 3).min(axis=0), rgb.reshape(-1, 3).max(axis=0)
    margin = canvas[~inside]
    assert ((margin >= least) & (margin <= most)).all()
    # Inside, the mask ramps down away from each grown side and is 0 past the blend band.
    original = mask[top : top + height, left : left + width, 0].astype(int)
    band = min(BLEND, max(1, min(height, width) // 4))
    ys, xs = np.mgrid[0:height, 0:width]
    far = np.full((height, width), True)
    for grown_side, distance in ((left, xs), (top, ys), (right, width - 1 - xs),
                                 (bottom, height - 1 - ys)):  # fmt: skip
        if grown_side:
            far &= distance >= band
            assert (original[distance == 0] == 255).all()  # the seam itself is regenerated
    assert (original[far] == 0).all()  # paste-back keeps these pixels exactly
    assert (original[~far] > 0).all()  # the blend band reaches its full width
    if left and not right:
        assert (np.diff(original, axis=1) <= 0).all()
    if top and not bottom:
        assert (np.diff(original, axis=0) <= 0).all()
    if not any(expand):
        assert np.array_equal(canvas, rgb) and (mask == 0).all()
