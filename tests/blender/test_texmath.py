"""Texture Object's numpy half with inputs we did not choose: camera directions, the greedy
choice, the dilation fill, unprojection against the add-on's projection."""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def texmath(installed: str) -> Any:
    return importlib.import_module(f"{installed}.texmath")


@pytest.fixture(scope="module")
def geometry(installed: str) -> Any:
    return importlib.import_module(f"{installed}.geometry")


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 200), hemisphere=st.booleans())
def test_fibonacci_directions_are_unit_spread_and_on_their_half(
    texmath: Any, count: int, hemisphere: bool
) -> None:
    d = texmath.fibonacci_directions(count, hemisphere)
    assert d.shape == (count, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    if hemisphere:
        assert (d[:, 2] >= 0).all()
    if count >= 8:  # no two closer than a fraction of the even spacing
        cos = np.clip(d @ d.T - 2 * np.eye(count), -1, 1)
        nearest = np.arccos(cos.max(axis=1)).min()
        area = (2 if hemisphere else 4) * math.pi
        assert nearest > 0.5 * math.sqrt(area / count)


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 24), elevation=st.floats(-89, 89))
def test_orbit_directions_share_the_elevation_and_spread_evenly(
    texmath: Any, count: int, elevation: float
) -> None:
    d = texmath.orbit_directions(count, elevation)
    np.testing.assert_allclose(np.degrees(np.arcsin(d[:, 2])), elevation, atol=1e-9)
    azimuth = np.sort(np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * math.pi))
    gaps = np.diff(np.append(azimuth, azimuth[0] + 2 * math.pi))
    np.testing.assert_allclose(gaps, 2 * math.pi / count, atol=1e-9)
    np.testing.assert_allclose(
        d[0, :2] / max(1e-12, math.cos(math.radians(elevation))), [0, -1], atol=1e-9
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.tuples(st.integers(1, 30), st.integers(1, 200)),
    target=st.floats(0.1, 1.0),
    budget=st.integers(1, 20),
)
def test_greedy_picks_the_best_next_view_until_done(
    texmath: Any, seed: int, shape: tuple[int, int], target: float, budget: int
) -> None:
    seen = np.random.default_rng(seed).random(shape) < 0.2
    picked, coverage = texmath.greedy_views(seen, target, budget)
    assert len(picked) == len(set(picked)) == len(coverage) <= budget
    assert coverage == sorted(coverage)
    covered = np.zeros(shape[1], dtype=bool)
    for n, pick in enumerate(picked):  # each pick gains the most of what is left
        gain = (seen & ~covered).sum(axis=1)
        assert gain[pick] == gain.max() > 0
        covered |= seen[pick]
        assert coverage[n] == pytest.approx(covered.mean())
    reachable = seen.any(axis=0).sum()
    done = covered.sum() >= target * reachable
    assert done or len(picked) == budget or not (seen & ~covered).any()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(4, 40), share=st.floats(0.01, 0.9))
def test_the_fill_colours_every_island_texel_from_covered_ones(
    texmath: Any, seed: int, size: int, share: float
) -> None:
    rng = np.random.default_rng(seed)
    rgba = np.zeros((size, size, 4), dtype=np.uint8)
    wanted = rng.random((size, size)) < 0.7
    covered = wanted & (rng.random((size, size)) < share)
    rgba[covered] = rng.integers(0, 256, (int(covered.sum()), 4))
    rgba[covered, 3] = 255
    out, filled = texmath.dilate_fill(rgba, covered, wanted)
    assert (out[covered] == rgba[covered]).all()  # what a view saw stays as it was
    assert (out[..., 3][wanted] == 255).all()
    assert not (filled & covered).any() and (filled == (wanted & ~covered)).all()
    if covered.any():  # averages of covered colours never leave their range
        low, high = rgba[covered, :3].min(axis=0), rgba[covered, :3].max(axis=0)
        assert (out[filled, :3] >= low).all() and (out[filled, :3] <= high).all()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.integers(8, 64),
    height=st.integers(8, 64),
    lens=st.floats(0.4, 3.0),
)
def test_unprojected_pixels_project_back_to_their_centres(
    texmath: Any, geometry: Any, seed: int, width: int, height: int, lens: float
) -> None:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3], camera_to_world[:3, 3] = q, rng.normal(size=3) * 5
    near, far, aspect = 0.1, 100.0, width / height
    projection = np.array(
        [
            [lens, 0, 0, 0],
            [0, lens * aspect, 0, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0],
        ]
    )
    depth = rng.uniform(0.5, 50.0, (height, width))
    world = texmath.unproject(depth, np.linalg.inv(camera_to_world), projection)
    uv = geometry.project(world.reshape(-1, 3), np.linalg.inv(camera_to_world), projection)
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    np.testing.assert_allclose(uv[:, 0], ((cols + 0.5) / width).ravel(), atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], (1 - (rows + 0.5) / height).ravel(), atol=1e-9)
    view = (world - camera_to_world[:3, 3]) @ q  # camera space: depth along −z
    np.testing.assert_allclose(-view[..., 2], depth, rtol=1e-9)
