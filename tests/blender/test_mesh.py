"""Mesh and material correctness of Texture from View and Inpaint Texture (issue 9: items 3,
4, 6, 7, 8, 9, 12), in the real bpy with the installed extension.

The server's part is not what these tests are about, so a result is made here (a known
image) and applied through the add-on's own prepare → apply path, exactly as the bridge does
with a server's result. What is checked is what the renderer sees: the UV map of the
*evaluated* mesh (after modifiers and shape keys) against Blender's own projection of the
evaluated positions (``world_to_camera_view``), and, once, a Cycles render of the textured
scene itself. test_operators.py runs the same actions against a real server.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import bmesh
import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mathutils import Matrix, Vector

from . import scenes
from .conftest import submodule

CAPABILITIES = ("generate", "inpaint", "control", "tile", "preview")
EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def sfumato(addon: ModuleType) -> Any:
    """The add-on's settings for small, quick jobs. (sfumato.protocol is importable only once
    the extension is installed: its wheels bring it.)"""
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution, s.random_seed = "test", 2, 128, True
    return s


# ------------------------------------------------------------------------------ helpers


def welcome() -> Any:
    from sfumato.protocol import Welcome

    return Welcome(server="test", protocol=1, capabilities=CAPABILITIES)


def clear_file() -> None:
    """An empty scene for the next hypothesis example (the fixture's file stays open)."""
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for collection in ("objects", "meshes", "cameras", "materials", "images", "node_groups"):
        data = getattr(bpy.data, collection)
        for block in list(data):
            data.remove(block)
    bpy.context.scene.sfumato.history.clear()


def texture(*objects: Any, pixels: np.ndarray | None = None) -> Any:
    """Texture from View on ``objects`` with a known image: the add-on's prepare (the pass
    render included), then its apply with a result carrying ``pixels`` (random if None)."""
    scenes.select(*objects)
    jobs, results = submodule("jobs"), submodule("results")
    from sfumato.protocol import Array, Result, Task

    pending = jobs.prepare_texture(bpy.context, bpy.context.scene.sfumato, welcome())
    p = pending.job.params
    if pixels is None:
        pixels = np.random.default_rng(0).integers(0, 256, (p.height, p.width, 3), np.uint8)
    result = Result(pending.job.id, Task.GENERATE, (Array.from_numpy(pixels),), (7,), "tiny-sd")
    results.apply(bpy.context.scene, pending, result)
    return pending


def evaluated(obj: Any, uv_map: str) -> tuple[np.ndarray, np.ndarray]:
    """Per corner of the mesh the renderer gets: its UV in ``uv_map`` and its world position."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    try:
        uv = np.empty(len(mesh.loops) * 2)
        mesh.uv_layers[uv_map].uv.foreach_get("vector", uv)
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        corners = np.empty(len(mesh.loops), dtype=np.int64)
        mesh.loops.foreach_get("vertex_index", corners)
    finally:
        ev.to_mesh_clear()
    m = np.array(obj.matrix_world)
    world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    return uv.reshape(-1, 2), world[corners]


def uv_error(obj: Any, camera: Any, uv_map: str) -> np.ndarray:
    """Per rendered corner, how far its UV is from where the camera sees its position
    (Blender's own ``world_to_camera_view``, not the add-on's maths)."""
    uv, world = evaluated(obj, uv_map)
    scene = bpy.context.scene
    truth = np.array([tuple(world_to_camera_view(scene, camera, Vector(p)))[:2] for p in world])
    return np.abs(uv - truth).max(axis=1)


def uv_map(camera: Any) -> str:
    return f"Sfumato {camera.name}"


# ------------------------------------------------------------------------------ scene shapes

MODIFIERS = {
    "MIRROR": {},
    "ARRAY": {"count": 2},
    "SUBSURF": {"levels": 1, "render_levels": 1},
    "SOLIDIFY": {"thickness": 0.15},
    "BEVEL": {"width": 0.05},
    "SIMPLE_DEFORM": {"deform_method": "TWIST", "angle": 0.6},
    "DISPLACE": {"strength": 0.2},
    "TRIANGULATE": {},
}
RESOLUTIONS = [(128, 64), (64, 128), (128, 128), (128, 96), (96, 128), (128, 72)]


@st.composite
def mesh_scenes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "primitive": draw(st.sampled_from(["cube", "sphere", "grid", "cylinder"])),
        "location": draw(st.tuples(*[st.floats(-0.8, 0.8)] * 3)),
        "rotation": draw(st.tuples(*[st.floats(-math.pi, math.pi)] * 3)),
        "scale": draw(st.floats(0.4, 1.0)),
        "modifiers": draw(st.lists(st.sampled_from(sorted(MODIFIERS)), max_size=3)),
        "shape_key": draw(st.none() | st.floats(0.0, 1.0)),
        "keep_uvs": draw(st.booleans()),
        "resolution": draw(st.sampled_from(RESOLUTIONS)),
        "camera_yaw": draw(st.floats(-math.pi, math.pi)),
        "camera_height": draw(st.floats(-4.0, 6.0)),
        "ortho": draw(st.booleans()),
        "lens": draw(st.floats(25.0, 85.0)),
        "shift": draw(st.tuples(st.floats(-0.2, 0.2), st.floats(-0.2, 0.2))),
        "seed": draw(st.integers(0, 2**16)),
    }


def build(shape: dict[str, Any]) -> tuple[Any, Any]:
    """A mesh object with a modifier stack and maybe a shape key, and a camera looking at it
    from 11 units away (everything stays in front of it)."""
    primitive = shape["primitive"]
    location, rotation = shape["location"], shape["rotation"]
    if primitive == "cube":
        bpy.ops.mesh.primitive_cube_add(size=1.5, location=location, rotation=rotation)
    elif primitive == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(
            segments=10, ring_count=6, radius=0.9, location=location, rotation=rotation
        )
    elif primitive == "grid":
        bpy.ops.mesh.primitive_grid_add(
            x_subdivisions=4, y_subdivisions=3, size=1.8, location=location, rotation=rotation
        )
    else:
        bpy.ops.mesh.primitive_cylinder_add(
            vertices=8, radius=0.7, depth=1.4, location=location, rotation=rotation
        )
    obj = bpy.context.active_object
    obj.scale = (shape["scale"],) * 3
    if not shape["keep_uvs"]:
        while obj.data.uv_layers:
            obj.data.uv_layers.remove(obj.data.uv_layers[0])
    if shape["shape_key"] is not None:
        obj.shape_key_add(name="Basis")
        key = obj.shape_key_add(name="Bulge")
        rng = np.random.default_rng(shape["seed"])
        co = np.empty(len(key.data) * 3)
        key.data.foreach_get("co", co)
        key.data.foreach_set("co", co + rng.uniform(-0.4, 0.4, co.shape))
        key.value = shape["shape_key"]
    for kind in shape["modifiers"]:
        mod = obj.modifiers.new(kind.title(), kind)
        for name, value in MODIFIERS[kind].items():
            setattr(mod, name, value)
    width, height = shape["resolution"]
    yaw, z = shape["camera_yaw"], shape["camera_height"]
    distance = math.sqrt(max(11.0**2 - z * z, 1.0))
    cam = scenes.camera(
        (distance * math.cos(yaw), distance * math.sin(yaw), z), width=width, height=height
    )
    cam.data.lens = shape["lens"]
    cam.data.shift_x, cam.data.shift_y = shape["shift"]
    if shape["ortho"]:
        cam.data.type, cam.data.ortho_scale = "ORTHO", 7.0
    bpy.context.view_layer.update()
    return obj, cam


# ------------------------------------------------------------------------------ item 6


def test_projection_rows_are_the_camera_projection(addon: ModuleType) -> None:
    """The folded rows give what geometry.project gives for the same points in world space."""
    geometry = submodule("geometry")

    @EXAMPLES
    @given(st.integers(0, 2**32 - 1))
    def check(seed: int) -> None:
        rng = np.random.default_rng(seed)
        to_camera = np.linalg.inv(_random_rigid(rng, 8.0))
        projection = np.diag([rng.uniform(0.5, 3), rng.uniform(0.5, 3), -1.0, 0.0])
        projection[3, 2], projection[2, 3] = -1.0, -0.2
        to_world = _random_rigid(rng, 1.0) @ np.diag([*rng.uniform(0.3, 2.0, 3), 1.0])
        points = rng.uniform(-1, 1, (50, 3))
        world = points @ to_world[:3, :3].T + to_world[:3, 3]
        rows = geometry.projection_rows(to_camera, projection, to_world)
        np.testing.assert_allclose(
            geometry.apply_rows(rows, points),
            geometry.project(world, to_camera, projection),
            atol=1e-9,
        )

    check()


def _random_rigid(rng: np.random.Generator, distance: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.normal(size=3) * distance
    return m


def test_uvs_follow_the_evaluated_mesh(sfumato: Any) -> None:
    """Any modifier stack, shape key, camera (portrait, ortho, shifted), with or without UVs:
    every corner the renderer gets has the UV of where the camera sees it."""

    @EXAMPLES
    @given(mesh_scenes())
    def check(shape: dict[str, Any]) -> None:
        clear_file()
        obj, cam = build(shape)
        uv_layers_before = [layer.name for layer in obj.data.uv_layers]
        texture(obj)
        error = uv_error(obj, cam, uv_map(cam))
        assert error.size and float(error.max()) < 1e-4, (shape, float(error.max()))
        assert [layer.name for layer in obj.data.uv_layers] == uv_layers_before  # mesh untouched

    check()


def test_the_render_shows_the_image_where_the_camera_saw_it(sfumato: Any) -> None:
    """The UVs the renderer really uses: a Cycles render from the camera of a mesh textured
    with an image whose pixels encode their own position shows, at each pixel, that pixel.
    Mirror + Array + Subdivision and a shape key at 1.0, seen by a portrait camera."""
    shape = {
        "primitive": "cube", "location": (0.3, 0.0, 0.2), "rotation": (0.2, 0.1, 0.4),
        "scale": 1.0, "modifiers": ["MIRROR", "ARRAY", "SUBSURF"], "shape_key": 1.0,
        "keep_uvs": True, "resolution": (64, 128), "camera_yaw": -1.2, "camera_height": 3.0,
        "ortho": False, "lens": 50.0, "shift": (0.05, -0.05), "seed": 3,
    }  # fmt: skip
    obj, cam = build(shape)
    obj.modifiers["Subsurf"].levels = obj.modifiers["Subsurf"].render_levels = 2
    cam.data.lens = 70.0
    height, width = 128, 64
    ys, xs = np.mgrid[0:height, 0:width]
    code = np.zeros((height, width, 3), np.uint8)  # row 0 at the top (protocol order)
    code[..., 0], code[..., 1] = xs * 4 + 2, (height - 1 - ys) * 2 + 1  # u, v of each pixel
    texture(obj, pixels=code)
    seen = _render_emission(obj, width, height)
    hit = seen[..., 3] > 0.99
    assert hit.mean() > 0.05  # the object covers a good part of the frame (~800 pixels)
    rows, cols = np.nonzero(hit)
    u_px = np.round((seen[rows, cols, 0] * 255 - 2) / 4)
    v_px = np.round((seen[rows, cols, 1] * 255 - 1) / 2)
    # Blender's rows go bottom to top: pixel row r from the bottom has v index r
    off = np.maximum(np.abs(u_px - cols), np.abs(v_px - rows))
    assert np.mean(off > 1) < 0.02, np.mean(off > 1)
    assert np.median(off) == 0


def _render_emission(obj: Any, width: int, height: int) -> np.ndarray:
    """Render the scene with the object's Sfumato texture shown unlit and sampled at the
    nearest texel: RGBA float, bottom row first."""
    import tempfile
    from pathlib import Path

    material = obj.material_slots[0].material
    nodes, links = material.node_tree.nodes, material.node_tree.links
    texture_node = nodes["Sfumato Texture"]
    texture_node.interpolation = "Closest"
    texture_node.image.colorspace_settings.name = "Non-Color"  # the codes, not colours
    emission = nodes.new("ShaderNodeEmission")
    links.new(texture_node.outputs["Color"], emission.inputs["Color"])
    out = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    links.new(emission.outputs["Emission"], out.inputs["Surface"])
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising = 1, False
    scene.cycles.filter_width = 0.01
    scene.render.film_transparent = True
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    with tempfile.TemporaryDirectory() as folder:
        scene.render.filepath = str(Path(folder) / "seen.exr")
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(scene.render.filepath)
        pixels = np.empty(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)


# ------------------------------------------------------------------------------ item 7


def test_linked_duplicates_each_get_their_own_projection_and_material(sfumato: Any) -> None:
    cam = scenes.camera((0.0, -9.0, 2.0), width=128, height=64)
    a = scenes.cube((-1.8, 0.0, 0.0), size=1.2)
    clay = bpy.data.materials.new("Clay")
    a.data.materials.append(clay)
    b = bpy.data.objects.new("B", a.data)  # Alt+D: one mesh, two objects
    bpy.context.scene.collection.objects.link(b)
    b.location = (1.8, 0.5, 0.3)
    b.rotation_euler = (0.3, 0.0, 0.7)
    bpy.context.view_layer.update()

    texture(a)
    assert float(uv_error(a, cam, uv_map(cam)).max()) < 1e-4
    assert b.material_slots[0].material is clay  # B untouched by A's texture
    assert list(a.data.materials) == [clay]  # the mesh's own material stays

    texture(b)
    for obj in (a, b):  # B's projection did not overwrite A's
        assert float(uv_error(obj, cam, uv_map(cam)).max()) < 1e-4
    first, second = (entry.targets[0].material for entry in sfumato.history)
    assert a.material_slots[0].material is first and b.material_slots[0].material is second
    assert first is not second

    for index in (1, 0):  # restore both: each shows the mesh's Clay again, through the mesh
        assert bpy.ops.sfumato.restore(index=index) == {"FINISHED"}
    for obj in (a, b):
        assert obj.material_slots[0].link == "DATA"
        assert obj.material_slots[0].material is clay
        assert not [m for m in obj.modifiers if m.type == "NODES"]  # no projection left
    assert list(a.data.materials) == [clay]


def test_restore_and_apply_again_bring_back_each_projection(sfumato: Any) -> None:
    """The same camera, moved between two textures: each history entry keeps its own."""
    cam = scenes.camera((0.0, -9.0, 1.0))
    box = scenes.cube(size=1.5)
    texture(box)
    first_rows = submodule("projection").rows_of(box, uv_map(cam))
    cam.location = (4.0, -8.0, 3.0)
    bpy.context.view_layer.update()
    texture(box)
    assert float(uv_error(box, cam, uv_map(cam)).max()) < 1e-4
    assert bpy.ops.sfumato.restore(index=1) == {"FINISHED"}  # back to the first texture
    np.testing.assert_allclose(submodule("projection").rows_of(box, uv_map(cam)), first_rows)
    assert box.material_slots[0].material is sfumato.history[0].targets[0].material
    assert bpy.ops.sfumato.apply_result(index=1) == {"FINISHED"}
    assert float(uv_error(box, cam, uv_map(cam)).max()) < 1e-4
    assert bpy.ops.sfumato.restore(index=0) == {"FINISHED"}  # before any texture: no slot
    assert len(box.material_slots) == 0 and not box.modifiers


# ------------------------------------------------------------------------------ item 3


def test_many_cameras_on_one_mesh_with_full_uv_maps(sfumato: Any) -> None:
    """Blender allows 8 UV maps per mesh; a mesh that has them all still takes a texture
    from each of 9 cameras (the projections are not UV layers of the mesh)."""
    box = scenes.cube(size=1.5)
    while len(box.data.uv_layers) < 8:
        box.data.uv_layers.new(name=f"Paint {len(box.data.uv_layers)}")
    cams = []
    for i in range(9):
        yaw = 2 * math.pi * i / 9
        cam = scenes.camera((9 * math.cos(yaw), 9 * math.sin(yaw), 1.0 + i * 0.3))
        cam.name = f"View {i}"
        cams.append(cam)
        texture(box)
    for cam in cams:
        assert float(uv_error(box, cam, uv_map(cam)).max()) < 1e-4
    assert len(box.data.uv_layers) == 8


def test_texture_from_view_in_edit_mode(sfumato: Any) -> None:
    cam = scenes.camera()
    box = scenes.cube(size=1.5)
    box.modifiers.new("Mirror", "MIRROR")
    scenes.select(box)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.transform.translate(value=(0.4, 0.0, 0.0))  # an edit not yet in the mesh data
    texture(box)
    assert box.mode == "EDIT"
    bpy.ops.object.mode_set(mode="OBJECT")
    assert float(uv_error(box, cam, uv_map(cam)).max()) < 1e-4


# ------------------------------------------------------------------------------ item 12


def test_select_all_leaves_out_the_backdrop(sfumato: Any) -> None:
    cam = scenes.camera()
    box = scenes.cube()
    image = bpy.data.images.new("Backdrop", 64, 32)
    image["sfumato"] = {}
    plane = submodule("scene").camera_backdrop(bpy.context.scene, cam, image, 20.0)
    bpy.ops.object.select_all(action="SELECT")
    pending = texture(box, plane)
    assert pending.targets == (box.name,)
    assert plane.material_slots[0].material.name.startswith("Sfumato Backdrop")
    scenes.select(plane)
    with pytest.raises(submodule("jobs").UserError, match="backdrop planes are left out"):
        submodule("jobs").prepare_texture(bpy.context, sfumato, welcome())


# ------------------------------------------------------------------------------ items 4, 8, 9


def pbr_plane(
    *, colour_float: bool = False, alpha: bool = False, chain: str = "direct"
) -> tuple[Any, Any, Any]:
    """The two-face plane of scenes.textured_plane with a PBR material: a Non-Color
    roughness map made first (the first image node), and the colour image reaching Base
    Color through ``chain``. Returns the object, the colour image and the roughness image."""
    obj, colour = scenes.textured_plane(64, 32, seed=5)
    material = obj.material_slots[0].material
    nodes, links = material.node_tree.nodes, material.node_tree.links
    colour_node = next(n for n in nodes if n.type == "TEX_IMAGE")
    if colour_float or alpha:
        rng = np.random.default_rng(9)
        colour = bpy.data.images.new("Colour", 64, 32, alpha=alpha, float_buffer=colour_float)
        values = rng.uniform(0.0, 4.0 if colour_float else 1.0, (32, 64, 4)).astype(np.float32)
        if not colour_float:
            values = np.round(values * 255) / 255
        values[..., 3] = rng.uniform(0.05, 1.0, (32, 64)) if alpha else 1.0
        if colour_float:
            colour.alpha_mode = "PREMUL"  # as Blender loads EXR files: packs back exactly
        colour.pixels.foreach_set(values.astype(np.float32).ravel())
        colour.pack()
        colour_node.image = colour
    rough = bpy.data.images.new("Roughness", 64, 32)
    rough.colorspace_settings.name = "Non-Color"
    rough.pack()
    for node in list(nodes):  # rebuild with the roughness node first in the node list
        if node.type == "TEX_IMAGE":
            nodes.remove(node)
    rough_node = nodes.new("ShaderNodeTexImage")
    rough_node.image = rough
    colour_node = nodes.new("ShaderNodeTexImage")
    colour_node.image = colour
    bsdf = nodes["Principled BSDF"]
    links.new(rough_node.outputs["Color"], bsdf.inputs["Roughness"])
    source = colour_node.outputs["Color"]
    if chain in ("hue", "mix"):
        between = nodes.new("ShaderNodeHueSaturation" if chain == "hue" else "ShaderNodeMixRGB")
        links.new(source, between.inputs["Color" if chain == "hue" else "Color1"])
        links.new(rough_node.outputs["Color"], between.inputs["Fac"])  # a factor: not colour
        source = between.outputs["Color"]
    if chain == "reroute":
        reroute = nodes.new("NodeReroute")
        links.new(source, reroute.inputs[0])
        source = reroute.outputs[0]
    links.new(source, bsdf.inputs["Base Color"])
    if chain == "mix shader":
        mix, out = nodes.new("ShaderNodeMixShader"), nodes["Material Output"]
        links.new(bsdf.outputs["BSDF"], mix.inputs[2])
        links.new(mix.outputs["Shader"], out.inputs["Surface"])
    nodes.active = rough_node  # the user's last click was elsewhere
    return obj, colour, rough


@pytest.mark.parametrize("chain", ["direct", "hue", "mix", "reroute", "mix shader"])
def test_inpaint_picks_the_image_feeding_base_color(addon: ModuleType, chain: str) -> None:
    obj, colour, _ = pbr_plane(chain=chain)
    _, node = submodule("scene").texture_node(obj)
    assert node.image is colour, chain


def test_inpaint_asks_when_several_images_feed_the_colour(addon: ModuleType) -> None:
    obj, colour, _ = pbr_plane()
    nodes = obj.material_slots[0].material.node_tree.nodes
    links = obj.material_slots[0].material.node_tree.links
    bsdf, mix = nodes["Principled BSDF"], nodes.new("ShaderNodeMixRGB")
    colour_node = next(n for n in nodes if n.type == "TEX_IMAGE" and n.image is colour)
    second = nodes.new("ShaderNodeTexImage")
    second.image = bpy.data.images.new("Dirt", 64, 32)
    links.new(colour_node.outputs["Color"], mix.inputs["Color1"])
    links.new(second.outputs["Color"], mix.inputs["Color2"])
    links.new(mix.outputs["Color"], bsdf.inputs["Base Color"])
    with pytest.raises(ValueError, match=r"several images feed the colour.*Dirt.*active node"):
        submodule("scene").texture_node(obj)
    nodes.active = second  # the user clicks the one they mean
    assert submodule("scene").texture_node(obj)[1] == second


def inpaint(obj: Any, generated: np.ndarray | None = None) -> Any:
    """Inpaint Texture through the add-on's prepare and apply; the "server" returns random
    pixels everywhere, so anything outside the mask that changes is the add-on's doing."""
    from sfumato.protocol import Array, Result, Task

    jobs, results = submodule("jobs"), submodule("results")
    settings = bpy.context.scene.sfumato
    pending = jobs.prepare_inpaint(bpy.context, settings, welcome())
    p = pending.job.params
    if generated is None:
        generated = np.random.default_rng(1).integers(0, 256, (p.height, p.width, 3), np.uint8)
    result = Result(pending.job.id, Task.INPAINT, (Array.from_numpy(generated),), (3,), "tiny-sd")
    results.apply(bpy.context.scene, pending, result)
    return pending


@pytest.mark.parametrize(("is_float", "alpha"), [(False, True), (True, False), (True, True)])
def test_inpaint_in_edit_mode_changes_only_the_selected_face(
    sfumato: Any, is_float: bool, alpha: bool
) -> None:
    """Edit Mode, a float or RGBA colour texture in a PBR material: only the colour image is
    replaced, float stays float (values above 1 too), alpha and every pixel outside the
    selected face's region are kept bit for bit, also after saving and reloading."""
    import tempfile
    from pathlib import Path

    obj, colour, rough = pbr_plane(colour_float=is_float, alpha=alpha, chain="hue")
    before = scenes.pixels(colour).copy()
    scenes.select(obj)
    sfumato.mask_grow = 0
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_mode(type="FACE")
    bpy.ops.mesh.select_all(action="DESELECT")
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.data.polygons[1].select = True  # the right half of the texture (u > 0.5)
    bpy.ops.object.mode_set(mode="EDIT")
    pending = inpaint(obj)
    assert obj.mode == "EDIT"
    mask = pending.job.mask.to_numpy()[..., 0]
    assert mask[:, 33:].all() and not mask[:, :31].any()  # the right half, from the edit mesh
    entry = sfumato.history[-1]
    new = entry.image
    assert (
        new.is_float == is_float and new.colorspace_settings.name == colour.colorspace_settings.name
    )
    nodes = obj.material_slots[0].material.node_tree.nodes
    images = {n.image.name for n in nodes if n.type == "TEX_IMAGE"}
    assert images == {new.name, rough.name}  # the roughness map is not touched
    after = scenes.pixels(new)
    np.testing.assert_array_equal(after[:, :31], before[:, :31])  # bit for bit, alpha too
    np.testing.assert_array_equal(after[..., 3], before[..., 3])
    assert np.mean(after[:, 33:, :3] != before[:, 33:, :3]) > 0.5
    if is_float:
        assert before[:, :31, :3].max() > 3.0  # the full range survived outside the mask
    bpy.ops.object.mode_set(mode="OBJECT")
    name = new.name
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "inpainted.blend")
        bpy.ops.wm.save_as_mainfile(filepath=path)
        bpy.ops.wm.open_mainfile(filepath=path)
        reloaded = scenes.pixels(bpy.data.images[name])
    np.testing.assert_array_equal(reloaded[:, :31], before[:, :31])


def test_inpainted_image_composites_only_inside_the_mask(addon: ModuleType) -> None:
    """Any image kind (byte or float, alpha or not, values past 1), any mask: outside it the
    pixels are the source's, bit for bit; inside, the colour is the generated one."""
    scene_io = submodule("scene")

    @EXAMPLES
    @given(
        st.booleans(),
        st.booleans(),
        st.integers(8, 40),
        st.integers(8, 40),
        st.integers(0, 2**32 - 1),
    )
    def check(is_float: bool, alpha: bool, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        source = bpy.data.images.new("Source", width, height, alpha=alpha, float_buffer=is_float)
        values = rng.uniform(0.0, 8.0 if is_float else 1.0, (height, width, 4)).astype(np.float32)
        values[..., 3] = rng.uniform(0.0, 1.0, (height, width)) if alpha else 1.0
        source.pixels.foreach_set(values.ravel())
        before = scenes.pixels(source)
        generated = rng.integers(0, 256, (height, width, 3), np.uint8)
        mask = np.where(rng.random((height, width, 1)) < rng.random(), 255, 0).astype(np.uint8)
        image = scene_io.inpainted_image("Out", source, generated, mask)
        after = scenes.pixels(image)
        inside = mask[::-1, :, 0] == 255  # Blender rows bottom up
        np.testing.assert_array_equal(after[~inside], before[~inside])
        np.testing.assert_array_equal(after[..., 3], before[..., 3])
        expected = generated[::-1].astype(np.float32) / 255
        if is_float:
            expected = scene_io.srgb_to_linear(expected)
            np.testing.assert_allclose(after[inside][:, :3], expected[inside], rtol=1e-6)
        else:
            np.testing.assert_array_equal(
                np.round(after[inside][:, :3] * 255), generated[::-1][inside]
            )
        assert image.is_float == is_float
        bpy.data.images.remove(image)
        bpy.data.images.remove(source)

    check()


def test_inpaint_in_edit_mode_finds_faces_through_the_projection(sfumato: Any) -> None:
    """A mesh textured from the camera through a Mirror: in Edit Mode, the mask of the
    selected faces is where the camera saw them (both the face and its mirrored copy)."""
    cam = scenes.camera((1.0, -8.0, 2.5), width=128, height=64)
    box = scenes.cube(size=1.2)
    box.data.transform(Matrix.Translation((0.9, 0.0, 0.0)))  # the mirror copy lands at -x
    box.modifiers.new("Mirror", "MIRROR")
    texture(box)
    scenes.select(box)
    sfumato.mask_grow = 0
    facing = int(np.argmin([p.normal.y for p in box.data.polygons]))  # the face toward -y
    bpy.ops.object.mode_set(mode="EDIT")
    edit = bmesh.from_edit_mesh(box.data)  # select as a user does: in the edit mesh only
    for element in (*edit.verts, *edit.edges, *edit.faces):
        element.select = False
    edit.faces.ensure_lookup_table()
    edit.faces[facing].select_set(True)
    bmesh.update_edit_mesh(box.data)
    pending = submodule("jobs").prepare_inpaint(bpy.context, sfumato, welcome())
    mask = pending.job.mask.to_numpy()[..., 0]
    scene = bpy.context.scene
    polygons = []
    for sign in (1.0, -1.0):  # the face and its mirror image across the object's x = 0
        corners = [box.data.vertices[i].co.copy() for i in box.data.polygons[facing].vertices]
        for co in corners:
            co.x *= sign
        polygons.append(
            np.array(
                [tuple(world_to_camera_view(scene, cam, box.matrix_world @ c))[:2] for c in corners]
            )
        )
    expected = submodule("geometry").rasterize(polygons, 128, 64, 0)
    differ = np.mean(mask != expected)
    assert expected.mean() > 5 and differ < 0.002, differ  # at most an edge pixel or two


def test_shared_meshes_texture_and_restore_in_any_order(sfumato: Any) -> None:
    """Objects sharing one mesh, with any slots (none, mesh-linked, object-linked): texture
    any of them in any order, each gets its own projection and shows its own material while
    the others keep theirs; restoring every entry, in any order, gives every object its slots
    exactly as they were."""

    @EXAMPLES
    @given(
        st.integers(2, 4),
        st.lists(st.sampled_from(["DATA", "OBJECT"]), max_size=2),
        st.data(),
    )
    def check(count: int, links: list[str], data: st.DataObject) -> None:
        clear_file()
        cam = scenes.camera((0.0, -10.0, 2.0))
        first = scenes.cube((-2.4, 0.0, 0.0), size=1.0)
        objects = [first]
        for i in range(1, count):
            other = bpy.data.objects.new(f"Copy {i}", first.data)
            bpy.context.scene.collection.objects.link(other)
            other.location = (-2.4 + 1.6 * i, 0.3 * i, 0.2 * i)
            objects.append(other)
        for k, link in enumerate(links):
            first.data.materials.append(bpy.data.materials.new(f"Mesh {k}"))
            for obj in objects:
                obj.material_slots[k].link = link
                if link == "OBJECT":
                    obj.material_slots[k].material = bpy.data.materials.new(f"{obj.name} {k}")
        bpy.context.view_layer.update()
        scene_io = submodule("scene")
        before = {obj.name: scene_io.slot_state(obj) for obj in objects}
        mesh_before = list(first.data.materials)
        order = data.draw(st.permutations(objects))
        textured = order[: data.draw(st.integers(1, count))]
        for obj in textured:
            texture(obj)
        last_material = {e.targets[0].object.name: e.targets[0].material for e in sfumato.history}
        for obj in objects:
            if obj.name in last_material:
                assert float(uv_error(obj, cam, uv_map(cam)).max()) < 1e-4
                assert {s.material for s in obj.material_slots} == {last_material[obj.name]}
            else:  # as before; a mesh that had no slot has an empty one now (shows the same)
                empty = [(None, "DATA")] if not before[obj.name] else before[obj.name]
                assert scene_io.slot_state(obj) == empty
        assert list(first.data.materials)[: len(mesh_before)] == mesh_before
        for index in data.draw(st.permutations(range(len(sfumato.history)))):
            assert bpy.ops.sfumato.restore(index=index) == {"FINISHED"}
        # restoring newest-last may leave an earlier texture showing (it was "before" a later
        # one); restoring in reverse order of application must give the start back exactly
        for index in reversed(range(len(sfumato.history))):
            assert bpy.ops.sfumato.restore(index=index) == {"FINISHED"}
        for obj in objects:
            assert scene_io.slot_state(obj) == before[obj.name], obj.name
            assert not [m for m in obj.modifiers if m.type == "NODES"]
        assert list(first.data.materials) == mesh_before

    check()


@pytest.mark.parametrize("kind", ["16-bit PNG", "8-bit PNG", "EXR"])
def test_inpainted_copy_of_a_texture_file_reads_back_the_same(
    addon: ModuleType, tmp_path: Any, kind: str
) -> None:
    """Texture files as users have them (sRGB and straight alpha on disk for PNGs, linear and
    premultiplied for EXR): the inpainted copy, packed, saved and read back, still has the
    source's pixels outside the mask, bit for bit."""
    rng = np.random.default_rng(4)
    width, height = 24, 16
    made = bpy.data.images.new("Made", width, height, alpha=True, float_buffer=kind != "8-bit PNG")
    values = rng.uniform(0.0, 1.0, (height, width, 4)).astype(np.float32)
    values[..., 3] = rng.uniform(0.2, 1.0, (height, width))
    made.pixels.foreach_set(values.ravel())
    path = tmp_path / ("texture.exr" if kind == "EXR" else "texture.png")
    made.filepath_raw, made.file_format = str(path), "OPEN_EXR" if kind == "EXR" else "PNG"
    made.save()
    source = bpy.data.images.load(str(path))
    assert source.is_float == (kind != "8-bit PNG")
    before = scenes.pixels(source)
    mask = np.zeros((height, width, 1), np.uint8)
    mask[:, width // 2 :] = 255
    generated = rng.integers(0, 256, (height, width, 3), np.uint8)
    copy = submodule("scene").inpainted_image("Inpainted", source, generated, mask)
    copy.use_fake_user = source.use_fake_user = True
    np.testing.assert_array_equal(scenes.pixels(copy)[:, : width // 2], before[:, : width // 2])
    blend = str(tmp_path / "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    bpy.ops.wm.open_mainfile(filepath=blend)
    reloaded = scenes.pixels(bpy.data.images["Inpainted"])
    np.testing.assert_array_equal(reloaded[:, : width // 2], before[:, : width // 2])
    np.testing.assert_array_equal(reloaded[..., 3], before[..., 3])


def test_seamless_material_in_edit_mode_on_a_shared_mesh(sfumato: Any) -> None:
    """Seamless Material started in Edit Mode on one of two objects sharing a mesh: it gets
    the material (through its UV map), the other keeps its own, and leaving Edit Mode keeps
    it so."""
    from sfumato.protocol import Array, Result, Task

    box = scenes.cube()
    clay = bpy.data.materials.new("Clay")
    box.data.materials.append(clay)
    twin = bpy.data.objects.new("Twin", box.data)
    bpy.context.scene.collection.objects.link(twin)
    scenes.select(box)
    bpy.ops.object.mode_set(mode="EDIT")
    pending = submodule("jobs").prepare_seamless(bpy.context, sfumato, welcome())
    side = pending.job.params.width
    pixels = np.random.default_rng(2).integers(0, 256, (side, side, 3), np.uint8)
    result = Result(pending.job.id, Task.GENERATE, (Array.from_numpy(pixels),), (1,), "tiny-sd")
    submodule("results").apply(bpy.context.scene, pending, result)
    bpy.ops.object.mode_set(mode="OBJECT")
    material = sfumato.history[-1].targets[0].material
    assert box.material_slots[0].material == material and material != clay
    assert twin.material_slots[0].material == clay and list(box.data.materials) == [clay]
    uv_node = next(n for n in material.node_tree.nodes if n.type == "UVMAP")
    assert uv_node.uv_map == box.data.uv_layers.active.name


def test_a_long_camera_name_keeps_one_projection(sfumato: Any) -> None:
    """Blender keeps 63 bytes of a name: a long, non-ASCII camera name still gives one
    modifier, one UV map and a material that finds it, textured twice."""
    cam = scenes.camera()
    cam.name = "Vue latérale über-weit " * 3  # 72 characters, more bytes
    box = scenes.cube()
    texture(box)
    texture(box)
    name = sfumato.history[-1].uv_map
    assert len(name.encode()) <= 63
    assert [m.name for m in box.modifiers] == [name]
    assert float(uv_error(box, cam, name).max()) < 1e-4
    material = box.material_slots[0].material
    assert next(n for n in material.node_tree.nodes if n.type == "UVMAP").uv_map == name
