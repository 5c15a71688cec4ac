"""Each action end to end: real bpy, the installed extension, a real server on the tiny model.
``wait=True`` runs the same code the timer runs, synchronously (headless bpy has no timers);
test_bridge.py drives the timer path itself."""

from __future__ import annotations

from types import ModuleType

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view

from . import scenes
from .conftest import runtime, submodule


def needs(*capabilities: str) -> None:
    """Connect, and fail when the server does not announce what the test's action needs: the
    server has every one (the add-on's refusal to send what a server lacks is checked by
    test_refuses_what_the_server_lacks), so a missing one is a broken server, never a skip."""
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    welcome = submodule("bridge").get().client.welcome
    missing = [c for c in capabilities if c not in welcome.capabilities]
    assert not missing, f"the server does not announce {missing}: {welcome.capabilities}"


@pytest.fixture
def settings(connected: ModuleType):
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution = "weathered bricks", 2, 128
    s.random_seed, s.seed = False, "1234"
    return s


def test_texture_from_view_projects_the_image_onto_the_selected_meshes(settings) -> None:
    needs("control")
    cam = scenes.camera(width=128, height=64)
    box = scenes.cube((0.5, 0.0, 0.0))
    other = scenes.cube((-2.5, 1.0, 0.0), size=1.0)
    scenes.select(box, other)

    assert bpy.ops.sfumato.texture_from_view(wait=True) == {"FINISHED"}

    scene = bpy.context.scene
    entry = settings.history[-1]
    image = entry.image
    assert entry.kind == "TEXTURE" and tuple(image.size) == (128, 64)
    assert image.packed_file is not None
    meta = image["sfumato"]
    assert meta["prompt"] == "weathered bricks" and meta["seed"] == "1234"
    assert meta["model"] == "tiny-sd" and meta["job_id"] == entry.job_id
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in (box, other):
        mesh = obj.evaluated_get(depsgraph).data  # the projection is a modifier: see test_mesh
        uv = mesh.uv_layers[f"Sfumato {cam.name}"]
        got = np.empty(len(mesh.loops) * 2)
        uv.uv.foreach_get("vector", got)
        expected = [
            tuple(world_to_camera_view(scene, cam, obj.matrix_world @ mesh.vertices[loop.vertex_index].co))[:2]
            for loop in mesh.loops
        ]  # fmt: skip
        np.testing.assert_allclose(got.reshape(-1, 2), expected, atol=1e-5)
        material = obj.material_slots[0].material
        textures = [n for n in material.node_tree.nodes if n.type == "TEX_IMAGE"]
        assert [t.image for t in textures] == [image]
        uv_nodes = [n for n in material.node_tree.nodes if n.type == "UVMAP"]
        assert uv_nodes[0].uv_map == uv.name
    assert runtime().error == "" and not runtime().busy


def test_restore_puts_the_previous_material_back(settings) -> None:
    needs("control")
    scenes.camera()
    box = scenes.cube()
    before = bpy.data.materials.new("Clay")
    box.data.materials.append(before)
    scenes.select(box)
    assert bpy.ops.sfumato.texture_from_view(wait=True) == {"FINISHED"}
    assert box.material_slots[0].material is not before
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert box.material_slots[0].material is before
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert box.material_slots[0].material.node_tree.nodes["Sfumato Texture"].image is (
        settings.history[-1].image
    )


def test_world_background_is_a_panorama_in_the_world(settings) -> None:
    needs("tile")
    assert bpy.ops.sfumato.world_background(wait=True) == {"FINISHED"}
    image = settings.history[-1].image
    assert tuple(image.size) == (128, 64)
    world = bpy.context.scene.world
    env = [n for n in world.node_tree.nodes if n.type == "TEX_ENVIRONMENT"]
    assert [n.image for n in env] == [image]
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    assert background.inputs["Color"].links[0].from_node == env[0]
    assert image["sfumato"]["tile"] == "x"


def test_camera_backdrop_sits_behind_the_objects(settings) -> None:
    needs("control")
    cam = scenes.camera(location=(0.0, -6.0, 0.0))
    scenes.cube((0.0, 0.0, 0.0))  # nearest face 5, farthest 7 from the camera plane
    assert bpy.ops.sfumato.camera_backdrop(wait=True) == {"FINISHED"}
    image = settings.history[-1].image
    assert tuple(image.size) == (128, 64)
    plane = bpy.data.objects[f"Sfumato Backdrop {cam.name}"]
    corners = [plane.matrix_world @ v.co for v in plane.data.vertices]
    to_cam = cam.matrix_world.inverted()
    depths = [-(to_cam @ c).z for c in corners]
    assert min(depths) > 7.0  # behind the cube's back
    framed = [world_to_camera_view(bpy.context.scene, cam, c) for c in corners]
    np.testing.assert_allclose(
        sorted((round(p.x), round(p.y)) for p in framed), [(0, 0), (0, 1), (1, 0), (1, 1)]
    )
    assert cam.data.background_images[0].image is image
    material = plane.material_slots[0].material
    assert material.node_tree.nodes["Sfumato Texture"].image is image


def test_seamless_material_tiles_on_the_selected_object(settings) -> None:
    needs("tile")
    box = scenes.cube()
    scenes.select(box)
    assert bpy.ops.sfumato.seamless_material(wait=True) == {"FINISHED"}
    image = settings.history[-1].image
    assert tuple(image.size) == (128, 128)
    assert image["sfumato"]["tile"] == "xy"
    material = box.material_slots[0].material
    assert material.node_tree.nodes["Sfumato Texture"].image is image


def test_inpaint_changes_only_the_selected_faces(settings) -> None:
    plane, painted = scenes.textured_plane(128, 64)
    before = scenes.pixels(painted).copy()
    plane.data.polygons[0].select = True  # the left half of the texture (u < 0.5)
    plane.data.polygons[1].select = False
    scenes.select(plane)
    settings.strength, settings.mask_grow = 1.0, 2

    assert bpy.ops.sfumato.inpaint_texture(wait=True) == {"FINISHED"}

    entry = settings.history[-1]
    after = scenes.pixels(entry.image)
    assert after.shape == before.shape == (64, 128, 4)
    node = plane.material_slots[0].material.node_tree.nodes["Image Texture"]
    assert node.image is entry.image and entry.previous_image is painted
    # right of the seam plus the 2-pixel grow: untouched, bit for bit (as bytes)
    outside = np.s_[:, 64 + 2 :, :3]
    np.testing.assert_array_equal(np.round(after[outside] * 255), np.round(before[outside] * 255))
    inside = np.s_[:, : 64 - 2, :3]
    assert np.mean(np.round(after[inside] * 255) != np.round(before[inside] * 255)) > 0.5
    assert entry.image["sfumato"]["source_image"] == painted.name
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert node.image is painted


def test_inpaint_with_a_painted_mask(settings) -> None:
    plane, painted = scenes.textured_plane(64, 64, seed=3)
    mask = bpy.data.images.new("Mask", 64, 64)
    values = np.zeros((64, 64, 4), dtype=np.float32)
    values[..., 3] = 1.0
    values[40:, :, :3] = 1.0  # white top rows (Blender rows go bottom → top)
    mask.pixels.foreach_set(values.ravel())
    settings.mask_image, settings.strength = mask, 1.0
    scenes.select(plane)
    before = scenes.pixels(painted).copy()
    assert bpy.ops.sfumato.inpaint_texture(wait=True) == {"FINISHED"}
    after = scenes.pixels(settings.history[-1].image)
    np.testing.assert_array_equal(np.round(after[:40] * 255), np.round(before[:40] * 255))
    assert np.any(np.round(after[40:] * 255) != np.round(before[40:] * 255))


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("operator", "capability"),
    [("texture_from_view", "control"), ("camera_backdrop", "control"),
     ("world_background", "tile"), ("seamless_material", "tile")],
)  # fmt: skip
def test_refuses_what_the_server_lacks(settings, operator: str, capability: str) -> None:
    """Protocol section 3: never send what the server did not announce; say what to do."""
    import dataclasses

    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    session = submodule("bridge").get().link.session  # a server that offers less
    session.offer = dataclasses.replace(session.offer, capabilities=("generate", "inpaint"))
    scenes.camera()
    scenes.select(scenes.cube())
    with pytest.raises(RuntimeError, match=f"no '{capability}' capability.*update the Sfumato"):
        getattr(bpy.ops.sfumato, operator)(wait=True)
    assert not runtime().busy and not settings.history


def test_no_camera_says_how_to_add_one(settings) -> None:
    scenes.select(scenes.cube())
    with pytest.raises(RuntimeError, match="no active camera"):
        bpy.ops.sfumato.texture_from_view(wait=True)
    assert "Add ▸ Camera" in runtime().error


def test_no_selection_says_what_to_select(settings) -> None:
    scenes.camera()
    scenes.select()
    with pytest.raises(RuntimeError, match="select the mesh objects"):
        bpy.ops.sfumato.seamless_material(wait=True)


def test_inpaint_without_a_texture_or_a_selection(settings) -> None:
    box = scenes.cube()
    scenes.select(box)
    with pytest.raises(RuntimeError, match="no image texture to inpaint"):
        bpy.ops.sfumato.inpaint_texture(wait=True)
    plane, _ = scenes.textured_plane()
    for polygon in plane.data.polygons:
        polygon.select = False
    scenes.select(plane)
    with pytest.raises(RuntimeError, match="select faces in Edit Mode"):
        bpy.ops.sfumato.inpaint_texture(wait=True)


def test_a_model_the_server_lacks(settings) -> None:
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    assert "tiny-sd" in runtime().models
    settings.model = "no-such-model"
    scenes.select(scenes.cube())
    with pytest.raises(RuntimeError, match=r"not on this server; pick one of: .*tiny-sd"):
        bpy.ops.sfumato.seamless_material(wait=True)


def test_server_down_says_how_to_start_one(addon: ModuleType) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bpy.context.preferences.addons[addon.__name__].preferences.url = f"ws://127.0.0.1:{port}"
    with pytest.raises(RuntimeError, match="no Sfumato server answers"):
        bpy.ops.sfumato.world_background(wait=True)
    assert "sfumato serve" in runtime().error
    assert runtime().connection == "DISCONNECTED" and not runtime().busy


def test_result_images_never_import_torch(connected: ModuleType) -> None:
    import sys

    assert "torch" not in sys.modules
    assert submodule("bridge").BRIDGE is not None
