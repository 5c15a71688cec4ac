"""The texture cameras' passes read from the render result (passcapture) are the EXR path's
bit for bit, and the pass render leaves no trace: the user's engine, the engine list."""

from __future__ import annotations

from types import ModuleType

import bpy
import numpy as np
import pytest

from . import scenes
from .conftest import submodule


def engines() -> set[str]:
    return {e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}


def scene_with_two_objects() -> tuple[object, list[tuple[object, str, bool]]]:
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    bpy.context.active_object.pass_index = 3
    scenes.cube(location=(1.8, -1.2, 0.0), size=0.8)
    cam = scenes.camera((1.0, -6.0, 1.0), width=96, height=64)
    layer = bpy.context.view_layer
    return cam, [(layer, "use_pass_uv", True), (layer, "use_pass_object_index", True)]


@pytest.mark.parametrize("size", [(96, 64), (64, 80)])
def test_captured_passes_equal_the_exr_bit_for_bit(
    addon: ModuleType, size: tuple[int, int]
) -> None:
    passes, capture = submodule("passes"), submodule("passcapture")
    cam, extra = scene_with_two_objects()
    scene, layer = bpy.context.scene, bpy.context.view_layer
    scene.render.engine = "BLENDER_WORKBENCH"
    listed = engines()
    written = passes.render_layers(scene, cam, layer, *size, extra)
    found = capture.render_layers(scene, cam, layer, *size, extra)
    assert scene.render.engine == "BLENDER_WORKBENCH" and engines() == listed
    assert capture.ENGINE not in listed and capture._engine_class() is not None
    assert sorted(found) == sorted(n for n in written if ".Combined." not in n)
    assert any(n.endswith(("IndexOB.X", "Object Index.X")) for n in found)
    for name, pixels in found.items():
        assert pixels.shape == (size[1], size[0]) and pixels.dtype == np.float32, name
        assert np.array_equal(pixels, written[name]), name  # same bits, same row order
    hit = passes.channel(found, "Depth.Z") < passes.BACKGROUND_Z
    assert 0 < hit.mean() < 1  # the frame shows the objects and the background


def test_without_cycles_class_the_exr_path_gives_the_same(
    addon: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = submodule("passcapture")
    cam, extra = scene_with_two_objects()
    scene, layer = bpy.context.scene, bpy.context.view_layer
    found = capture.render_layers(scene, cam, layer, 96, 64, extra)
    monkeypatch.setattr(capture, "_engine_class", lambda: None)
    fallback = capture.render_layers(scene, cam, layer, 96, 64, extra)
    assert sorted(fallback) == sorted(found)
    assert all(np.array_equal(fallback[n], found[n]) for n in found)


def test_a_render_that_leaves_no_passes_is_an_error(
    addon: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = submodule("passcapture")
    cam, extra = scene_with_two_objects()
    scene, layer = bpy.context.scene, bpy.context.view_layer
    before = scene.render.engine
    monkeypatch.setattr(capture, "result_channels", lambda result: {})
    with pytest.raises(RuntimeError, match="no passes"):
        capture.render_layers(scene, cam, layer, 96, 64, extra)
    assert scene.render.engine == before and capture.ENGINE not in engines()


def test_an_exception_inside_the_capture_engine_fails_the_render_and_changes_nothing(
    addon: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in the engine's own callback (Blender calls it, not us: it would only
    print the traceback) ends in an error that gives the reason, the scene's settings and
    engine list as they were, and the next render works."""
    capture = submodule("passcapture")
    cam, extra = scene_with_two_objects()
    scene, layer = bpy.context.scene, bpy.context.view_layer
    before = scene.render.engine, scene.render.resolution_x, scene.render.filepath
    real = capture.result_channels

    def broken(result: object) -> dict[str, np.ndarray]:
        raise ValueError("a pass could not be read")

    monkeypatch.setattr(capture, "result_channels", broken)
    with pytest.raises(RuntimeError, match=r"could not be read .*ValueError: a pass could not"):
        capture.render_layers(scene, cam, layer, 96, 64, extra)
    assert (scene.render.engine, scene.render.resolution_x, scene.render.filepath) == before
    assert capture.ENGINE not in engines()
    monkeypatch.setattr(capture, "result_channels", real)
    found = capture.render_passes(scene, cam, layer, 96, 64)
    assert found.depth.shape == (64, 96) and not found.background.all()
