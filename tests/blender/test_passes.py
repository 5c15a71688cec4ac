"""Passes → arrays against geometry we know: a wall at a known distance, tilted planes."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from . import scenes
from .conftest import submodule


def wall(distance: float, tilt: float = 0.0, size: float = 1.5) -> object:
    """A plane facing a camera at the origin that looks down −z; tilted about x."""
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0.0, 0.0, -distance))
    plane = bpy.context.active_object
    plane.rotation_euler = (tilt, 0.0, 0.0)
    bpy.context.view_layer.update()
    return plane


def camera_at_origin() -> object:
    cam = scenes.camera(width=96, height=64)
    cam.location, cam.rotation_euler = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    cam.data.lens = 50
    bpy.context.view_layer.update()
    return cam


def test_depth_is_planar_distance_and_background_is_masked(addon: ModuleType) -> None:
    capture = submodule("passcapture")
    cam = camera_at_origin()
    wall(3.0)
    scene = bpy.context.scene
    found = capture.render_passes(scene, cam, bpy.context.view_layer, 96, 64)
    assert found.depth.shape == (64, 96) and found.depth.dtype == np.float32
    hit = ~found.background
    assert hit[32, 48] and found.background[0, 0]  # 1.5 wide at 3 m: the corners miss it
    np.testing.assert_allclose(found.depth[hit], 3.0, atol=1e-4)  # planar: same at the edges
    assert (found.depth[found.background] == 0).all()
    np.testing.assert_allclose(found.normal[hit], [[0.0, 0.0, 1.0]] * hit.sum(), atol=1e-4)
    assert (found.normal[found.background] == 0).all()


def test_normals_are_in_camera_space(addon: ModuleType) -> None:
    """Tilt the wall 30° about x and turn the camera: the camera-space normal is the tilt
    alone, whatever the camera's turn in the world."""
    capture = submodule("passcapture")
    cam = camera_at_origin()
    plane = wall(3.0, tilt=math.radians(30), size=4.0)
    turn = Matrix.Rotation(math.radians(40), 4, "Z")
    for obj in (cam, plane):  # turn the whole rig: nothing changes as seen from the camera
        obj.matrix_world = turn @ obj.matrix_world
    bpy.context.view_layer.update()
    found = capture.render_passes(bpy.context.scene, cam, bpy.context.view_layer, 96, 64)
    centre = found.normal[32, 48]
    expected = [0.0, -math.sin(math.radians(30)), math.cos(math.radians(30))]
    np.testing.assert_allclose(centre, expected, atol=1e-3)


def test_rows_top_first(addon: ModuleType) -> None:
    """Something only in the upper half of the frame shows in the arrays' first rows."""
    capture = submodule("passcapture")
    cam = camera_at_origin()
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 0.6, -3.0))
    found = capture.render_passes(bpy.context.scene, cam, bpy.context.view_layer, 96, 64)
    rows = np.nonzero(~found.background)[0]
    assert rows.size and rows.max() < 32


def test_settings_are_restored(addon: ModuleType) -> None:
    capture = submodule("passcapture")
    scene = bpy.context.scene
    cam = camera_at_origin()
    scene.render.engine, scene.render.filepath = "BLENDER_WORKBENCH", "//mine"
    scene.render.resolution_x = 321
    engine = scene.render.engine
    capture.render_passes(scene, cam, bpy.context.view_layer, 64, 64)
    assert (scene.render.engine, scene.render.filepath, scene.render.resolution_x) == (
        engine, "//mine", 321,
    )  # fmt: skip
    assert not bpy.context.view_layer.use_pass_normal


def test_geometry_helpers(addon: ModuleType) -> None:
    geometry = submodule("geometry")
    assert geometry.frame_size(1920, 1080, 512) == (512, 288)
    assert geometry.frame_size(1080, 1920, 512) == (288, 512)
    assert geometry.frame_size(2, 1, 100) == (128, 64)  # never under 64, and still 2:1
    square = np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]])
    mask = geometry.rasterize([square], 8, 8)
    assert mask.dtype == np.uint8 and (mask[2:6, 2:6] == 255).all() and mask.sum() == 16 * 255
    assert geometry.rasterize([square], 8, 8, grow=1).sum() == (36 - 4 + 4) * 255 - 4 * 255
    corner = np.array([[0, 0.5], [0.5, 0.5], [0, 1.0]])  # a triangle in the top left (v up)
    tri = geometry.rasterize([corner], 8, 8)
    assert tri[:4, :4].any() and not tri[4:].any()


def test_a_pass_setting_this_blender_lacks_raises_before_anything_changes(
    addon: ModuleType, monkeypatch: Any
) -> None:
    """A setting the pass render needs that a Blender release renamed or removed is an
    error naming it, never skipped (the passes would come out wrong); the scene is left as
    it was. Every setting it sets exists in each tested release (the other tests render)."""
    passes = submodule("passes")
    scene = bpy.context.scene
    with pytest.raises(RuntimeError, match=r"has no RenderSettings\.use_old_thing, which"):
        passes.check_settings([(scene.render, "use_old_thing", True)])
    camera = scenes.camera(width=64, height=64)
    before = passes.snapshot(scene.render), passes.snapshot(scene.cycles)
    real = passes.check_settings

    def with_a_missing_one(wanted: list) -> None:
        real([*wanted, (scene.cycles, "samples_of_old", 1)])

    monkeypatch.setattr(passes, "check_settings", with_a_missing_one)
    with pytest.raises(RuntimeError, match=r"CyclesRenderSettings\.samples_of_old"):
        submodule("passcapture").render_passes(scene, camera, bpy.context.view_layer, 64, 64)
    assert (passes.snapshot(scene.render), passes.snapshot(scene.cycles)) == before
