"""The Blender add-on's UV-polygon rasterizer (blender_addon/geometry.py, numpy only), checked
without Blender under hypothesis: random convex polygons at random mask sizes against a
pixel-centre oracle, the union of several, ``grow`` as a 4-neighbour dilation, and V up.

geometry.py imports no bpy, so it is loaded from its file here (the add-on's package does
import bpy); the Blender tests (tests/blender) check the same function inside Blender."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from .protocol.strategies import FAST


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "blender_addon" / "geometry.py"
    spec = importlib.util.spec_from_file_location("sfumato_blender_geometry", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


geometry = _load()
EDGE = 1e-6  # pixel centres this close to an edge may fall either way


@st.composite
def convex_polygons(draw: st.DrawFn) -> np.ndarray:
    """A convex polygon in UV space (3 … 8 corners on an ellipse, either winding), partly
    outside 0…1 at times, as UV islands may be."""
    n = draw(st.integers(3, 8))
    cx, cy = draw(st.floats(-0.2, 1.2)), draw(st.floats(-0.2, 1.2))
    rx, ry = draw(st.floats(0.01, 0.8)), draw(st.floats(0.01, 0.8))
    cuts = sorted(draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n, unique=True)))
    gaps = zip(cuts, [*cuts[1:], cuts[0] + 2 * math.pi], strict=True)
    assume(all(b - a > 1e-3 for a, b in gaps))
    points = np.array([(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in cuts])
    return points[::-1] if draw(st.booleans()) else points


def oracle(polygon: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, unsure): pixel centres inside the polygon, and those within EDGE of an edge
    (in pixels), judged by each edge's signed distance."""
    px = np.column_stack([polygon[:, 0] * width, (1.0 - polygon[:, 1]) * height])
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    sides = []
    for p, q in zip(px, np.roll(px, -1, axis=0), strict=True):
        length = math.hypot(*(q - p))
        sides.append(((q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])) / length)
    d = np.stack(sides)
    inside = (d >= 0).all(axis=0) | (d <= 0).all(axis=0)
    unsure = (np.abs(d) < EDGE).any(axis=0)
    return inside, unsure


sizes = st.integers(1, 64)


@FAST
@given(convex_polygons(), sizes, sizes)
def test_a_pixel_is_masked_exactly_when_its_centre_is_inside(
    polygon: np.ndarray, width: int, height: int
) -> None:
    mask = geometry.rasterize([polygon], width, height)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    inside, unsure = oracle(polygon, width, height)
    assert np.array_equal((mask == 255)[~unsure], inside[~unsure])


@FAST
@given(st.lists(convex_polygons(), min_size=1, max_size=4), sizes, sizes)
def test_several_polygons_mask_their_union(
    polygons: list[np.ndarray], width: int, height: int
) -> None:
    together = geometry.rasterize(polygons, width, height)
    apart = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        apart |= geometry.rasterize([polygon], width, height)
    assert np.array_equal(together, apart)


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Pixels within ``steps`` 4-neighbour moves of a masked one (Manhattan distance)."""
    on = np.argwhere(mask)
    h, w = mask.shape
    if len(on) == 0:
        return np.zeros_like(mask, bool)
    ys, xs = np.mgrid[0:h, 0:w]
    near = np.abs(ys[..., None] - on[:, 0]) + np.abs(xs[..., None] - on[:, 1])
    return near.min(axis=-1) <= steps


@FAST
@given(convex_polygons(), st.integers(1, 32), st.integers(1, 32), st.integers(0, 5))
def test_grow_widens_the_mask_by_that_many_pixels(
    polygon: np.ndarray, width: int, height: int, grow: int
) -> None:
    base = geometry.rasterize([polygon], width, height) == 255
    grown = geometry.rasterize([polygon], width, height, grow) == 255
    assert np.array_equal(grown, dilate(base, grow))
    assert np.array_equal(geometry.rasterize([polygon], width, height, -3) == 255, base)


@FAST
@given(st.integers(2, 64), st.integers(2, 64), st.floats(0.05, 0.45))
def test_v_points_up_and_u_right(width: int, height: int, size: float) -> None:
    """A square in the top-left corner of UV space (u small, v near 1) lands in row 0,
    column 0 of the mask (row 0 at the top)."""
    square = np.array([(0, 1), (size, 1), (size, 1 - size), (0, 1 - size)], float)
    fractions = [(size * n + 0.5) % 1 for n in (width, height)]
    assume(all(1e-6 < f < 1 - 1e-6 for f in fractions))  # no centre on the square's edge
    mask = geometry.rasterize([square], width, height) == 255
    columns, rows = math.floor(size * width + 0.5), math.floor(size * height + 0.5)
    expected = np.zeros((height, width), bool)
    expected[:rows, :columns] = True  # the centres of these lie inside the square
    assert np.array_equal(mask, expected)
