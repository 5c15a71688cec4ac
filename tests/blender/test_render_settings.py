"""The user's render settings survive the pass render (Texture from View, Camera Backdrop):
every output format, depth, codec, colour management, size, pixel aspect, engine, samples and
view layer pass comes back exactly. Non-square pixels render and project like square ones. A
malformed server URL is named with the fix, never raised as a bare ValueError."""

from __future__ import annotations

import math
import os
import time
from types import ModuleType
from typing import Any

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import scenes
from .conftest import runtime, submodule

BLENDER_5 = bpy.app.version >= (5, 0, 0)
# Output formats users pick, with the settings that go with each (written in this order;
# Blender 5 first needs the media type that offers the format).
FORMATS = {
    "jpeg": {"file_format": "JPEG", "quality": 73, "color_mode": "RGB"},
    "exr-16-piz": {"file_format": "OPEN_EXR", "color_depth": "16", "exr_codec": "PIZ"},
    "tiff-16": {"file_format": "TIFF", "color_depth": "16", "tiff_codec": "LZW"},
    "png-8": {"file_format": "PNG", "color_depth": "8", "compression": 42, "color_mode": "RGBA"},
}
# Where a pass render writes, or may write as a side effect: compared value by value.
NESTED = ("view_settings", "display_settings", "linear_colorspace_settings")
HYPOTHESIS = {  # SFUMATO_EXAMPLES=40 for a deeper search than the suite can afford
    "max_examples": int(os.environ.get("SFUMATO_EXAMPLES", "6")),
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | set) or value is None:
        return value
    try:
        return tuple(plain(v) for v in value)
    except TypeError:
        return value


def values(struct: Any) -> dict[str, Any]:
    """Every plain property of an RNA struct, read-only ones too (written independently of
    the add-on's own snapshot, so a property it forgets shows up here)."""
    return {
        p.identifier: plain(getattr(struct, p.identifier))
        for p in struct.bl_rna.properties
        if p.type not in {"POINTER", "COLLECTION"} and p.identifier != "rna_type"
    }


def everything(scene: Any) -> dict[str, dict[str, Any]]:
    image = scene.render.image_settings
    found = {
        "render": values(scene.render),
        "image": values(image),
        "cycles": values(scene.cycles),
        "view_layer": values(scene.view_layers[0]),
        "scene view": values(scene.view_settings),
        "scene display": values(scene.display_settings),
    }
    found |= {f"image {n}": values(getattr(image, n)) for n in NESTED if hasattr(image, n)}
    return found


def assert_same(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> None:
    changed = {
        f"{group}.{name}": (old, after[group][name])
        for group, old_values in before.items()
        for name, old in old_values.items()
        if after[group][name] != old
    }
    assert not changed, f"settings changed (before, after): {changed}"


def set_output(scene: Any, fmt: str) -> None:
    image = scene.render.image_settings
    if BLENDER_5:
        image.media_type = "IMAGE"
    for name, value in FORMATS[fmt].items():
        setattr(image, name, value)
    assert image.file_format == FORMATS[fmt]["file_format"]


def engines() -> list[str]:
    return [e.identifier for e in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items]


def user_settings(scene: Any, data: Any) -> None:
    """Random, valid choices a user makes outside the output format."""
    r = scene.render
    r.engine = data.draw(st.sampled_from(engines()), label="engine")
    r.resolution_x = data.draw(st.integers(4, 4000), label="resolution_x")
    r.resolution_y = data.draw(st.integers(4, 4000), label="resolution_y")
    r.resolution_percentage = data.draw(st.integers(1, 200), label="percentage")
    r.pixel_aspect_x = data.draw(st.floats(1.0, 8.0), label="pixel_aspect_x")
    r.pixel_aspect_y = data.draw(st.floats(1.0, 8.0), label="pixel_aspect_y")
    r.film_transparent = data.draw(st.booleans(), label="film_transparent")
    r.use_border = data.draw(st.booleans(), label="use_border")
    r.filepath = data.draw(st.sampled_from(["//render/", "/tmp/out_####", ""]), label="path")
    scene.cycles.samples = data.draw(st.integers(1, 4096), label="samples")
    scene.cycles.use_denoising = data.draw(st.booleans(), label="denoise")
    layer = scene.view_layers[0]
    layer.use_pass_z = data.draw(st.booleans(), label="use_pass_z")
    layer.use_pass_normal = data.draw(st.booleans(), label="use_pass_normal")
    layer.use_pass_mist = data.draw(st.booleans(), label="use_pass_mist")
    image = r.image_settings
    if data.draw(st.booleans(), label="override colour management"):
        image.color_management = "OVERRIDE"
        image.view_settings.view_transform = "Standard"
        image.view_settings.exposure = data.draw(st.floats(-2.0, 2.0), label="exposure")
    scene.view_settings.look = "None"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@settings(**HYPOTHESIS)
@given(data=st.data())
def test_a_pass_render_puts_every_setting_back(addon: ModuleType, fmt: str, data: Any) -> None:
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    cam = scenes.camera()
    scenes.cube()
    set_output(scene, fmt)
    user_settings(scene, data)
    before = everything(scene)
    found = submodule("passcapture").render_passes(scene, cam, bpy.context.view_layer, 64, 48)
    assert found.depth.shape == (48, 64) and (~found.background).any()
    assert_same(before, everything(scene))
    assert scene.render.image_settings.file_format == FORMATS[fmt]["file_format"]


def test_restore_reports_what_it_cannot_put_back(addon: ModuleType) -> None:
    """restore() sets only what differs, in dependency order, and says what stayed off."""
    passes = submodule("passes")
    image = bpy.context.scene.render.image_settings
    set_output(bpy.context.scene, "jpeg")
    saved = passes.snapshot(image)
    if BLENDER_5:
        image.media_type = "MULTI_LAYER_IMAGE"
    image.file_format, image.color_depth = "OPEN_EXR_MULTILAYER", "32"
    assert passes.restore(image, saved) == []
    assert (image.file_format, image.quality) == ("JPEG", 73)
    assert passes.restore(image, {**saved, "file_format": "NO_SUCH_FORMAT"}) == ["file_format"]


@pytest.fixture
def quick(connected: ModuleType) -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution, s.random_seed = "plaster", 2, 64, False
    return s


@pytest.mark.parametrize(
    ("action", "fmt"), [("texture_from_view", "exr-16-piz"), ("camera_backdrop", "tiff-16")]
)
def test_the_actions_leave_the_users_output_alone(quick: Any, action: str, fmt: str) -> None:
    scene = bpy.context.scene
    scenes.camera()
    scenes.select(scenes.cube())
    set_output(scene, fmt)
    scene.render.engine, scene.render.film_transparent = "BLENDER_WORKBENCH", True
    scene.render.pixel_aspect_x = 2.0
    before = everything(scene)
    assert getattr(bpy.ops.sfumato, action)(wait=True) == {"FINISHED"}
    assert runtime().error == "", runtime().error
    assert_same(before, everything(scene))


# ----------------------------------------------------------------------- non-square pixels


@settings(**HYPOTHESIS)
@given(
    aspect=st.tuples(st.floats(1.0, 4.0), st.floats(1.0, 4.0)),
    size=st.tuples(st.integers(48, 160), st.integers(48, 160)),
)
def test_non_square_pixels_render_and_line_up_with_the_projection(
    addon: ModuleType, aspect: tuple[float, float], size: tuple[int, int]
) -> None:
    """Whatever the pixel aspect, the passes render (Blender writes no multi-layer EXR of
    non-square pixels), and the object seen in them sits where the job's projection puts it,
    which is where Blender's own camera frame has it."""
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    cam = scenes.camera((0.0, -8.0, 0.0), width=size[0], height=size[1])
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = aspect
    bpy.ops.mesh.primitive_plane_add(
        size=1.0, location=(0.4, 0.0, 0.3), rotation=(math.pi / 2, 0, 0)
    )
    plane = bpy.context.active_object
    r = scene.render
    shown = geometry_aspect(r)
    width, height = submodule("geometry").frame_size(shown, 1.0, 96)
    found = submodule("passcapture").render_passes(
        scene, cam, bpy.context.view_layer, width, height
    )
    rows, cols = np.nonzero(~found.background)
    assert rows.size, "the plane is not in the passes"
    to_camera, projection = submodule("scene").camera_matrices(
        cam, bpy.context.evaluated_depsgraph_get(), width, height
    )
    corners = np.array([plane.matrix_world @ v.co for v in plane.data.vertices])
    uv = submodule("geometry").project(corners, to_camera, projection)
    # the plane's pixels lie inside its projected corners (one pixel of slack at the edges)
    lo = uv.min(axis=0) * (width, height) - 1
    hi = uv.max(axis=0) * (width, height) + 1
    assert lo[0] <= cols.min() and cols.max() + 1 <= hi[0]
    assert lo[1] <= height - rows.max() - 1 and height - rows.min() <= hi[1]
    # … and where Blender's frame (which knows the pixel aspect) has them, within the frame's
    # rounding to whole latent steps
    blender = np.array(
        [tuple(world_to_camera_view(scene, cam, c))[:2] for c in plane_corners(plane)]
    )
    slack = 8.0 / min(width, height)
    np.testing.assert_allclose(uv, blender, atol=slack)


def geometry_aspect(r: Any) -> float:
    return submodule("geometry").render_aspect(
        r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y
    )


def plane_corners(plane: Any) -> list[Any]:
    return [plane.matrix_world @ v.co for v in plane.data.vertices]


def test_texture_from_view_with_anamorphic_pixels(quick: Any) -> None:
    """2:1 pixels end to end: the job runs, its image has the frame's displayed shape, and
    the UVs are Blender's own camera-frame positions."""
    scene = bpy.context.scene
    cam = scenes.camera(width=64, height=64)
    scene.render.pixel_aspect_x = 2.0  # displayed 2:1
    box = scenes.cube()
    scenes.select(box)
    assert bpy.ops.sfumato.texture_from_view(wait=True) == {"FINISHED"}
    assert runtime().error == "", runtime().error
    image = quick.history[-1].image
    assert tuple(image.size) == (128, 64)
    # the UVs of what renders (the evaluated mesh), against Blender's own camera frame
    evaluated = box.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        uv = mesh.uv_layers[f"Sfumato {cam.name}"]
        got = np.empty(len(mesh.loops) * 2)
        uv.uv.foreach_get("vector", got)
        world = [
            evaluated.matrix_world @ mesh.vertices[loop.vertex_index].co for loop in mesh.loops
        ]
    finally:
        evaluated.to_mesh_clear()
    expected = [tuple(world_to_camera_view(scene, cam, p))[:2] for p in world]
    np.testing.assert_allclose(got.reshape(-1, 2), expected, atol=1e-5)


# --------------------------------------------------------------------------- server URLs


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    url=st.one_of(
        st.integers(65536, 10**7).map(lambda p: f"ws://127.0.0.1:{p}"),
        st.sampled_from(["ws://127.0.0.1:abc", "http://127.0.0.1:8746", "127.0.0.1", "ws://[::1"]),
    )
)
def test_a_malformed_url_is_a_message_in_the_panel(addon: ModuleType, url: str) -> None:
    """Connect with ``wait`` (what scripts and the actions do) and the Connect button (on a
    thread; the timer shows the outcome): the panel names the URL and the form to use."""
    bpy.context.preferences.addons[addon.__name__].preferences.url = url
    with pytest.raises(RuntimeError, match="ws://HOST:PORT"):
        bpy.ops.sfumato.connect(wait=True)
    assert runtime().connection == "DISCONNECTED" and "ws://HOST:PORT" in runtime().error
    runtime().error = ""
    assert bpy.ops.sfumato.connect() == {"FINISHED"}
    deadline = time.monotonic() + 30
    while runtime().connection == "CONNECTING" and time.monotonic() < deadline:
        assert submodule("bridge").tick() is not None  # the timer stays alive
        time.sleep(0.02)
    assert runtime().connection == "DISCONNECTED" and "ws://HOST:PORT" in runtime().error
