"""The multiview core without any model (issue 11): analytic scenes ray-cast in numpy
(sfumato.engine.multiview_scene) against the projection, occlusion, masks and blend of
sfumato.engine.multiview / multiview_bake, and the camera maths under hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.engine.multiview import Camera, edge_distance, position_colours
from sfumato.engine.multiview_bake import Bake, ViewGeometry, ViewStats, bake_views
from sfumato.engine.multiview_scene import (
    Box,
    look_at,
    orthographic,
    perspective,
    render,
    sphere_maps,
)

SIZE = (96, 96)
TEXTURE = 128
RING = [(4.0, 0.0, 0.6), (0.0, 4.0, 0.6), (-4.0, 0.0, 0.6), (0.0, -4.0, 0.6)]
POLES = [(0.3, 0.2, 4.0), (0.3, 0.2, -4.0)]
# a box between the camera at +x and the sphere: it hides the middle of the sphere's +x side
BOX = Box((1.6, -0.35, -0.35), (2.0, 0.35, 0.35))


def geometry(passes: object) -> ViewGeometry:
    return ViewGeometry(passes.camera, passes.depth, passes.uv, passes.mask)  # type: ignore[attr-defined]


def expected_colours(position: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.rint(np.clip((position - lo) / (hi - lo), 0, 1) * 255)


def position_bake(
    eyes: list[tuple[float, ...]], boxes: tuple[Box, ...] = (), ortho: float | None = None
) -> tuple:
    position, normal, texels = sphere_maps(TEXTURE)
    bake = Bake(position, normal, texels)
    lo, hi = bake.bounds()
    passes = [render(eye, SIZE, boxes=boxes, ortho_scale=ortho) for eye in eyes]
    stats: list[ViewStats] = []

    def paint(n: int, init: object, mask: object) -> np.ndarray:
        return position_colours(passes[n].camera, passes[n].depth, lo, hi)

    images = bake_views(bake, [geometry(p) for p in passes], paint, lambda n, s: stats.append(s))
    return bake, images, stats, expected_colours(position, lo, hi)


@pytest.mark.parametrize(
    ("boxes", "least"), [((), 0.995), ((BOX,), 0.93)], ids=["sphere", "sphere behind a box"]
)
def test_position_paint_bakes_the_position_map(boxes: tuple[Box, ...], least: float) -> None:
    """Each view paints the world position it sees (unprojected from its depth pass, never
    through its UV pass); the baked texture must then be the position map wherever covered.
    Measured: max error 1 of 255 (interpolation and rounding); 99.8 % covered (the poles
    and the grazing bands between views are what six 96² views miss), 94.8 % with the box
    (what it hides from the +x camera only grazing views see)."""
    bake, images, stats, expected = position_bake(RING + POLES, boxes)
    texture = bake.texture()
    covered = texture[..., 3] == 255
    error = np.abs(texture[..., :3].astype(float) - expected)[covered]
    print(f"covered {bake.covered():.4%}, max error {error.max():.0f}/255")
    assert error.max() <= 2
    assert bake.covered() >= least
    assert np.all(texture[~covered] == 0)  # uncovered: transparent black
    # the coverage figures add up: each covered texel had one first view
    assert sum(s.new for s in stats) == np.count_nonzero(covered)
    assert len(images) == len(RING + POLES) and all(i.shape == (*SIZE, 3) for i in images)


def test_position_paint_with_orthographic_cameras() -> None:
    """The same check through orthographic cameras (parallel rays, a constant view axis)."""
    bake, _, stats, expected = position_bake(RING + POLES, ortho=2.4)
    texture = bake.texture()
    covered = texture[..., 3] == 255
    error = np.abs(texture[..., :3].astype(float) - expected)[covered]
    assert error.max() <= 2 and bake.covered() >= 0.995
    assert sum(s.new for s in stats) == np.count_nonzero(covered)


def segment_hits_box(eye: np.ndarray, points: np.ndarray, box: Box) -> np.ndarray:
    """Whether the segment eye → point passes through the box (slab test, independent)."""
    d = points - eye
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.asarray(box.lo) - eye) / d
        t2 = (np.asarray(box.hi) - eye) / d
    t_in = np.nanmax(np.minimum(t1, t2), axis=1)
    t_out = np.nanmin(np.maximum(t1, t2), axis=1)
    return (t_in <= t_out) & (t_out > 0) & (t_in < 1)


@pytest.mark.parametrize("part", [False, True], ids=["another object", "part of the target"])
def test_a_texel_hidden_behind_another_object_gets_no_weight(part: bool) -> None:
    """Another object in front (the mask is 0 there), or a part of the target itself (the
    mask is 255 there: only the depth test can tell)."""
    eye = np.array(RING[0])
    position, normal, texels = sphere_maps(TEXTURE)
    flat = position.reshape(-1, 3).astype(np.float64)
    hidden = segment_hits_box(eye, flat, BOX)
    facing = np.einsum("ij,ij->i", flat, eye - flat) > 0
    assert np.count_nonzero(hidden & facing) > 200  # the box really hides part of the front

    weights = {}
    for name, boxes in (("open", ()), ("occluded", (BOX,))):
        bake = Bake(position, normal, texels)
        view = render(tuple(eye), SIZE, boxes=boxes, boxes_are_target=part)
        image = np.full((*SIZE, 3), 200, np.uint8)
        bake.add_view(view.camera, view.depth, view.mask, image)
        weights[name] = bake.weight
    # without the box these texels get weight from this view; with it, none at all
    assert np.count_nonzero(weights["open"][hidden & facing] > 0) > 200
    assert np.all(weights["occluded"][hidden] == 0)
    # and the rest of the front still gets its weight
    seen = ~hidden & facing & (weights["open"] > 0)
    assert np.count_nonzero(weights["occluded"][seen] > 0) > 0.9 * np.count_nonzero(seen)


def test_the_back_of_the_target_gets_no_weight() -> None:
    """Self-occlusion: texels facing away, and so hidden by the sphere itself, get none."""
    eye = np.array(RING[0])
    position, normal, texels = sphere_maps(TEXTURE)
    bake = Bake(position, normal, texels)
    view = render(tuple(eye), SIZE)
    bake.add_view(view.camera, view.depth, view.mask, np.zeros((*SIZE, 3), np.uint8))
    flat = position.reshape(-1, 3)
    back = np.einsum("ij,ij->i", flat, eye - flat) <= 0
    assert np.all(bake.weight[back] == 0)
    assert np.count_nonzero(bake.weight[~back] > 0) > 0.5 * np.count_nonzero(~back)


def test_the_second_views_mask_excludes_what_the_first_covered_well() -> None:
    position, normal, texels = sphere_maps(TEXTURE)
    bake = Bake(position, normal, texels)
    first, second = render(RING[0], SIZE), render((2.8, 2.8, 0.6), SIZE)  # 45° apart
    bake.add_view(first.camera, first.depth, first.mask, np.zeros((*SIZE, 3), np.uint8))
    _, sampled, mask = bake.init_and_mask(second.uv, second.mask)
    target = second.mask[..., 0] == 255
    # the texel each target pixel of the second view shows, by its UV (nearest, independent)
    u, v = second.uv[..., 0], second.uv[..., 1]
    col = np.clip((u * TEXTURE).astype(int), 0, TEXTURE - 1)
    row = np.clip(((1 - v) * TEXTURE).astype(int), 0, TEXTURE - 1)
    grid = bake.weight.reshape(TEXTURE, TEXTURE)
    around = np.stack(
        [
            grid[np.clip(row + dr, 0, TEXTURE - 1), (col + dc) % TEXTURE]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        ]
    )
    well = target & (around.min(axis=0) >= 0.5)
    unseen = target & (around.max(axis=0) == 0)
    assert np.count_nonzero(well) > 500 and np.count_nonzero(unseen) > 500  # both exist
    assert np.all(mask[well] == 0)  # covered well by the first: not painted again
    assert np.all(mask[unseen] == 255)  # never seen: painted
    assert np.all(mask[~target] == 0)  # background and other objects are never painted
    assert np.all((sampled[target] < 0.5) == (mask[target] == 255))


def test_later_views_keep_their_init_where_they_do_not_paint() -> None:
    position, normal, texels = sphere_maps(TEXTURE)
    bake = Bake(position, normal, texels)
    passes = [render(RING[0], SIZE), render((2.8, 2.8, 0.6), SIZE)]
    seen: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def paint(n: int, init: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        if init is not None and mask is not None:
            seen[n] = (init.copy(), mask.copy())
        return np.full((*SIZE, 3), 40 + 100 * n, np.uint8)

    images = bake_views(bake, [geometry(p) for p in passes], paint)
    init, mask = seen[1]
    assert np.array_equal(images[1][mask == 0], init[mask == 0])
    assert np.all(images[1][mask == 255] == 140)
    # the texture where only the second view painted is its colour
    weight = bake.weight
    texture = bake.texture().reshape(-1, 4)
    assert set(np.unique(texture[weight > 0, 0])) <= set(range(40, 141))


cameras = st.builds(
    lambda az, el, dist, fov, w, h: (
        (dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)),
        np.radians(fov),
        (w * 8, h * 8),
    ),
    st.floats(0, 2 * np.pi),
    st.floats(-1.4, 1.4),
    st.floats(1.5, 50.0),
    st.floats(15.0, 100.0),
    st.integers(1, 32),
    st.integers(1, 32),
)


@settings(max_examples=60, deadline=None)
@given(cameras, st.booleans(), st.data())
def test_pixel_to_world_to_pixel_round_trip(
    camera: tuple, ortho: bool, data: st.DataObject
) -> None:
    eye, fov, (w, h) = camera
    proj = orthographic(fov / 10, w / h) if ortho else perspective(fov, w / h)
    cam = Camera(look_at(np.array(eye), np.zeros(3)), proj, w, h)
    depth = data.draw(st.floats(0.2, 90.0))
    world = cam.unproject(np.full((h, w), depth))
    x, y, d = cam.project(world.reshape(-1, 3))
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    assert np.allclose(x, xs.reshape(-1), atol=1e-6 * max(w, h))
    assert np.allclose(y, ys.reshape(-1), atol=1e-6 * max(w, h))
    assert np.allclose(d, depth, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(cameras, st.booleans())
def test_ray_cast_hits_project_back_to_their_pixels(camera: tuple, ortho: bool) -> None:
    """The scene's ray caster (closed form) and the core's projection agree on every hit."""
    eye, fov, (w, h) = camera
    view = render(eye, (w, h), fov_y=fov, ortho_scale=fov / 20 if ortho else None)
    hit = view.mask[..., 0] == 255
    x, y, d = view.camera.project(view.hit[hit])
    ys, xs = np.nonzero(hit)
    assert np.allclose(x, xs, atol=1e-5 * max(w, h)) and np.allclose(y, ys, atol=1e-5 * max(w, h))
    assert np.allclose(d, view.depth[..., 0][hit], rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_edge_distance_is_the_chessboard_distance(h: int, w: int, seed: int, most: int) -> None:
    rng = np.random.default_rng(seed)
    mask = np.where(rng.random((h, w)) < 0.85, 255, 0).astype(np.uint8)
    got = edge_distance(mask, most)
    bad = np.pad(mask < 128, 1, constant_values=True)  # off the image counts as bad
    by, bx = np.nonzero(bad)
    for y in range(h):
        for x in range(w):
            nearest = np.max(np.abs(np.stack([by - (y + 1), bx - (x + 1)])), axis=0).min()
            assert got[y, x] == min(nearest, most)
