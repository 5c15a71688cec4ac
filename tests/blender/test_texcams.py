"""Texture cameras, the per-view passes and the UV bake, without a server (issue 11, items 1
and 3): cameras frame the objects and keep the user's order; the view passes, the camera
matrices, the UV pass and Blender's position bake agree pixel for texel; another object in
front is left out of the mask; a mesh without a usable UV map gets Sfumato's own, the user's
maps untouched."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import bpy
import numpy as np
import pytest

from . import scenes
from .conftest import submodule

VIEW = 64
TEXTURE = 128


def suzanne(location: tuple[float, float, float] = (0.2, 0.0, 0.1)) -> Any:
    bpy.ops.mesh.primitive_monkey_add(location=location)
    obj = bpy.context.active_object
    obj.rotation_euler = (0.2, 0.1, 0.5)
    bpy.context.view_layer.update()
    return obj


def corners_in_frame(cam: Any, objects: list[Any]) -> np.ndarray:
    """Where each object's bounding-box corners land in ``cam``'s square frame (0…1)."""
    scene, geometry = submodule("scene"), submodule("geometry")
    to_camera, projection = scene.camera_matrices(
        cam, bpy.context.evaluated_depsgraph_get(), VIEW, VIEW
    )
    points = []
    for obj in objects:
        m = np.array(obj.matrix_world)
        box = np.array([tuple(c) for c in obj.bound_box])
        points.append(box @ m[:3, :3].T + m[:3, 3])
    return geometry.project(np.concatenate(points), to_camera, projection)


def test_orbit_and_hemisphere_cameras_frame_the_objects_in_the_users_order(
    addon: ModuleType,
) -> None:
    texcams = submodule("texcams")
    monkey = suzanne()
    other = scenes.cube(location=(-1.5, 0.5, 0.0), size=0.8)
    scenes.select(monkey, other)
    t = bpy.context.scene.sfumato.texturing
    t.strategy, t.count, t.elevation = "ORBIT", 6, 30.0
    assert bpy.ops.sfumato.add_texture_cameras() == {"FINISHED"}
    cams = texcams.ordered(bpy.context.scene)
    assert len(cams) == 6 and [i.camera for i in t.cameras] == cams
    assert all(c.name in bpy.data.collections[texcams.COLLECTION].objects for c in cams)
    centre, _ = texcams.bounds([monkey, other])
    for cam in cams:
        frame = corners_in_frame(cam, [monkey, other])
        assert (frame > 0.0).all() and (frame < 1.0).all(), frame  # every corner in view
        seen_from = np.array(cam.matrix_world.translation) - centre
        elevation = math.degrees(math.asin(seen_from[2] / np.linalg.norm(seen_from)))
        assert elevation == pytest.approx(30.0, abs=1e-3)
    # the user reorders, deletes one and adds one of their own to the collection
    t.camera_index = 0
    assert bpy.ops.sfumato.texture_camera_move(direction="DOWN") == {"FINISHED"}
    assert texcams.ordered(bpy.context.scene)[:2] == [cams[1], cams[0]]
    bpy.data.objects.remove(cams[2])
    mine = bpy.data.objects.new("Mine", bpy.data.cameras.new("Mine"))
    bpy.data.collections[texcams.COLLECTION].objects.link(mine)
    order = texcams.ordered(bpy.context.scene)
    assert order == [cams[1], cams[0], cams[3], cams[4], cams[5], mine]
    t.camera_index = 5  # the last listed: Sfumato's, so removing it deletes it
    last = t.cameras[5].camera.name
    assert bpy.ops.sfumato.texture_camera_remove() == {"FINISHED"}
    assert last not in bpy.data.objects
    assert len(t.cameras) == 5 and texcams.ordered(bpy.context.scene)[-1] == mine
    scenes.select(mine)
    assert bpy.ops.sfumato.texture_camera_add() == {"FINISHED"}
    assert [i.camera for i in t.cameras][-1] == mine
    assert texcams.ordered(bpy.context.scene).count(mine) == 1
    scenes.select(monkey, other)
    # placing again replaces Sfumato's cameras, never the user's
    t.strategy, t.count = "HEMISPHERE", 5
    assert bpy.ops.sfumato.add_texture_cameras() == {"FINISHED"}
    placed = [i.camera for i in t.cameras]
    assert len(placed) == 5 and "Mine" in bpy.data.objects
    assert all(np.array(c.matrix_world.translation)[2] >= centre[2] - 1e-6 for c in placed)


@pytest.mark.parametrize("shape", ["sphere", "suzanne"])
def test_greedy_cameras_see_the_whole_surface(addon: ModuleType, shape: str) -> None:
    texcams = submodule("texcams")
    if shape == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0)
        target = bpy.context.active_object
    else:
        target = suzanne()
    scenes.select(target)
    placed = texcams.place(bpy.context, [target], "GREEDY", target=0.995, budget=16, view_side=128)
    seen, reachable = placed.coverage[-1], placed.reachable
    print(
        f"greedy on {shape}: {len(placed.cameras)} views paint {seen:.1%} of the surface, "
        f"{seen / reachable:.1%} of the {reachable:.1%} that any of {texcams.CANDIDATES} "
        "directions paints (128² views)"
    )
    assert seen >= 0.99 * reachable
    if shape == "sphere":  # nothing of a sphere is hidden from every side
        assert reachable == 1.0
    else:  # Suzanne's eyeballs sit in her head: their backs are seen from nowhere
        assert 0.95 < reachable < 0.99
    assert list(placed.coverage) == sorted(placed.coverage)  # each view adds something
    assert len(placed.cameras) <= 16


def test_views_matrices_uv_pass_and_bake_agree(addon: ModuleType) -> None:
    """Each pixel of the target: the world point its depth and the camera matrices give is
    the point the position bake stores at the texel its UV pass names, within that texel's
    own size; pixels of a cube in front are out of the mask. Render settings, the target's
    pass index and its render UV map are as they were."""
    texbake, texmath, scene = submodule("texbake"), submodule("texmath"), submodule("scene")
    monkey = suzanne()
    monkey.pass_index = 7
    blocker = scenes.cube(location=(0.0, -1.6, 0.0), size=0.6)
    cam = scenes.camera((0.0, -5.0, 0.5), width=VIEW, height=VIEW)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    uv_map, made = texbake.choose_uv_map(monkey, depsgraph)
    assert (uv_map, made) == ("UVMap", False)  # Suzanne's own map does not overlap
    baked = texbake.bake_maps(bpy.context.scene, monkey, uv_map, TEXTURE)
    render = bpy.context.scene.render
    engine = render.engine
    seen = texbake.view_passes(
        bpy.context.scene, cam, bpy.context.view_layer, monkey, uv_map, VIEW, VIEW
    )
    assert render.engine == engine and monkey.pass_index == 7
    assert (
        not bpy.context.view_layer.use_pass_uv and not bpy.context.view_layer.use_pass_object_index
    )
    assert [o.name for o in bpy.data.objects] == sorted(["Camera", "Cube", "Suzanne"])
    to_camera, projection = scene.camera_matrices(cam, depsgraph, VIEW, VIEW)
    world = texmath.unproject(seen.depth, to_camera, projection)
    looked_up = texmath.sample_texels(baked.position, seen.uv)
    error = np.linalg.norm(world - looked_up, axis=-1)
    # the texel's size in the world: the farthest of its four neighbours on the island
    size = np.zeros(baked.texels.shape)
    inner = baked.texels.copy()
    for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        moved = np.roll(baked.position, shift, (0, 1))
        on = np.roll(baked.texels, shift, (0, 1))
        size = np.maximum(size, np.where(on, np.linalg.norm(moved - baked.position, axis=-1), 0))
        inner &= on
    rows = np.clip(((1 - seen.uv[..., 1]) * TEXTURE).astype(int), 0, TEXTURE - 1)
    cols = np.clip((seen.uv[..., 0] * TEXTURE).astype(int), 0, TEXTURE - 1)
    checked = seen.mask & inner[rows, cols]
    assert checked.sum() > 0.9 * seen.mask.sum() > 200
    ratio = error[checked] / size[rows, cols][checked]
    print(f"unprojected vs baked: max {error[checked].max():.4f} units, {ratio.max():.2f} texels")
    assert ratio.max() <= 1.0
    # the cube is in front of the monkey's lower middle: seen (depth) but not masked
    front = (seen.depth > 0) & (seen.depth < 3.5)  # the cube's face is at 3.1, hers beyond 4
    assert front.sum() > 50 and not (seen.mask & front).any()
    assert (seen.uv[~seen.mask] == 0).all()
    normal_dot = np.einsum("ijk,ijk->ij", baked.normal, baked.position - np.array(monkey.location))
    assert (normal_dot[baked.texels] > -0.5).mean() > 0.9  # outward, in world space
    np.testing.assert_allclose(np.linalg.norm(baked.normal[baked.texels], axis=-1), 1.0, atol=1e-3)
    assert blocker.name == "Cube"
    # greedy's own view of that camera (texmath.rasterise) is Cycles' passes, pixel for pixel
    hers, cube = (texbake.world_triangles(o, depsgraph) for o in (monkey, blocker))
    tris, owner = (
        np.concatenate([hers, cube]),
        np.r_[np.zeros(len(hers), int), np.full(len(cube), -1)],
    )
    depth, found = texmath.rasterise(tris, owner, to_camera, projection[0, 0], VIEW)
    surface = seen.depth.reshape(VIEW, VIEW) > 0
    assert ((depth > 0) == surface).all() and ((found == 0) == seen.mask).all()
    relative = np.abs(depth - seen.depth.reshape(VIEW, VIEW))[surface] / depth[surface]
    print(f"rasterised vs Cycles: same {surface.sum()} pixels, depth within {relative.max():.1e}")
    assert relative.max() < 1e-5


def test_overlapping_or_missing_uvs_get_a_smart_uv_map_and_the_users_stay(
    addon: ModuleType,
) -> None:
    texbake, texmath = submodule("texbake"), submodule("texmath")
    cube = scenes.cube()
    stacked = cube.data.uv_layers["UVMap"]
    stacked.uv.foreach_set("vector", [0, 0, 1, 0, 1, 1, 0, 1] * 6)  # every face on one square
    before = np.empty(48)
    stacked.uv.foreach_get("vector", before)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    hits = texmath.uv_hits(texbake.uv_triangles(cube, depsgraph, "UVMap"), 64)
    assert texmath.overlap_share(hits) > 0.99 and hits.max() == 6
    assert texbake.choose_uv_map(cube, depsgraph) == (texbake.SMART_UV, True)
    after = np.empty(48)
    cube.data.uv_layers["UVMap"].uv.foreach_get("vector", after)
    assert (after == before).all() and cube.data.uv_layers.active.name == "UVMap"
    assert texbake.usable(cube, bpy.context.evaluated_depsgraph_get(), texbake.SMART_UV)
    assert texbake.choose_uv_map(cube, depsgraph) == (texbake.SMART_UV, False)  # kept
    bpy.ops.mesh.primitive_cylinder_add(location=(3.0, 0.0, 0.0))
    bare = bpy.context.active_object
    bare.data.uv_layers.remove(bare.data.uv_layers[0])
    assert texbake.choose_uv_map(bare, bpy.context.evaluated_depsgraph_get())[0] == "Sfumato UV"
    assert texbake.usable(bare, bpy.context.evaluated_depsgraph_get(), "Sfumato UV")
    assert [o.name for o in bpy.data.objects] == ["Cube", "Cylinder"]  # no copies left over


def test_uv_hits_count_each_texel_once_across_shared_edges(addon: ModuleType) -> None:
    texmath = submodule("texmath")
    rng = np.random.default_rng(3)
    for _ in range(20):  # a random quad cut along a diagonal: every texel once, none twice
        low = rng.uniform(0.0, 0.4, 2)
        high = rng.uniform(0.6, 1.0, 2)
        a, b, c, d = low, (high[0], low[1]), high, (low[0], high[1])
        tris = np.array([[a, b, c], [a, c, d]], dtype=float)
        hits = texmath.uv_hits(tris, int(rng.integers(16, 96)))
        assert hits.max() == 1 and texmath.overlap_share(hits) == 0.0
