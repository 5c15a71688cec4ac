"""Blender → arrays for whole-object texturing: the UV map to paint, the target's UV-space
position and normal maps (baked by Cycles), and per texture camera the passes the server
needs (depth, camera-space normal, UV, the target's mask) from one render.

The bake runs on a temporary copy of the object (its own mesh copy), so the user's object,
materials, selection and edit state are never touched; the copy is deleted afterwards.
Every render and bake setting is put back as ``passes`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from . import passcapture, passes, texmath

SMART_UV = "Sfumato UV"  # the map made when the active one cannot be painted
MAX_OVERLAP = 0.002  # share of island texels covered twice that still counts as no overlap
MAX_UV_MAPS = 8  # Blender's limit per mesh


@dataclass(frozen=True)
class Baked:
    """The target's texture-space maps, row 0 = v = 1 (the protocol's order)."""

    position: np.ndarray  # T×T×3 float32, world space
    normal: np.ndarray  # T×T×3 float32, world unit normals
    texels: np.ndarray  # T×T bool: on the UV islands


@dataclass(frozen=True)
class ViewPasses:
    """What one texture camera sees of the target, row 0 at the top."""

    depth: np.ndarray  # H×W float32, view-space depth, 0 where nothing was hit
    normal: np.ndarray  # H×W×3 float32, camera space
    uv: np.ndarray  # H×W×2 float32, the target's UVs (u right, v up)
    mask: np.ndarray  # H×W bool: the target is the nearest surface


# ------------------------------------------------------------------------------------ UVs


def uv_triangles(obj: Any, depsgraph: Any, uv_map: str) -> np.ndarray:
    """The UV triangles (K×3×2) of the mesh as it renders (after modifiers)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_map)
        if layer is None:
            return np.zeros((0, 3, 2))
        mesh.calc_loop_triangles()
        loops = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("loops", loops)
        uvs = np.empty(len(mesh.loops) * 2, dtype=np.float64)
        layer.uv.foreach_get("vector", uvs)
        return uvs.reshape(-1, 2)[loops].reshape(-1, 3, 2)
    finally:
        evaluated.to_mesh_clear()


def world_triangles(obj: Any, depsgraph: Any) -> np.ndarray:
    """The evaluated mesh's triangles in world space (T×3×3)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        verts = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", verts)
        tris = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", tris)
    finally:
        evaluated.to_mesh_clear()
    m = np.array(obj.matrix_world, dtype=np.float64)
    world = verts.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    return world[tris].reshape(-1, 3, 3)


def usable(obj: Any, depsgraph: Any, uv_map: str, size: int = 256) -> bool:
    """Whether ``uv_map`` can carry a painted texture: it exists, has area, and no two of its
    triangles cover the same texels (checked by rasterising them at ``size``²)."""
    triangles = uv_triangles(obj, depsgraph, uv_map)
    if not len(triangles):
        return False
    hits = texmath.uv_hits(triangles, size)
    return bool((hits > 0).any()) and texmath.overlap_share(hits) <= MAX_OVERLAP


def choose_uv_map(obj: Any, depsgraph: Any) -> tuple[str, bool]:
    """The UV map to paint: the active one when usable, else Sfumato's own (kept from an
    earlier run when still usable, else made by Smart UV Project). The user's maps and which
    one is active are never changed. Returns the name and whether it was made now."""
    layers = obj.data.uv_layers
    active = layers.active.name if layers.active is not None else None
    if active is not None and usable(obj, depsgraph, active):
        return active, False
    if SMART_UV in layers and usable(obj, depsgraph, SMART_UV):
        return SMART_UV, False
    if SMART_UV not in layers and len(layers) >= MAX_UV_MAPS:
        raise ValueError(
            f"{obj.name}'s active UV map overlaps itself and the mesh has {MAX_UV_MAPS} UV "
            "maps already, Blender's most; delete one, or unwrap the active map without "
            "overlaps (UV ▸ Unwrap)"
        )
    smart_uv(obj)
    return SMART_UV, True


def smart_uv(obj: Any) -> None:
    """Give ``obj``'s mesh a UV map ``SMART_UV`` made by Smart UV Project, unwrapped on a
    copy (the operator needs Edit Mode and every face selected, which would change the
    user's selection) and copied over loop for loop; the active map stays as it was."""
    mesh = obj.data
    with _temporary_copy(obj) as copy:
        layers = copy.data.uv_layers
        layer = layers.get(SMART_UV) or layers.new(name=SMART_UV)
        layers.active = layer
        with _only_selected(copy):
            bpy.ops.object.mode_set(mode="EDIT")
            try:
                bpy.ops.mesh.select_all(action="SELECT")
                bpy.ops.uv.smart_project(island_margin=0.02)
            finally:
                bpy.ops.object.mode_set(mode="OBJECT")
        uvs = np.empty(len(copy.data.loops) * 2, dtype=np.float32)
        copy.data.uv_layers[SMART_UV].uv.foreach_get("vector", uvs)
    active = mesh.uv_layers.active.name if mesh.uv_layers.active is not None else None
    target = mesh.uv_layers.get(SMART_UV) or mesh.uv_layers.new(name=SMART_UV, do_init=False)
    target.uv.foreach_set("vector", uvs)
    if active is not None:
        mesh.uv_layers.active = mesh.uv_layers[active]
    mesh.update()


# ------------------------------------------------------------------------------------ bake


def bake_maps(scene: Any, obj: Any, uv_map: str, size: int) -> Baked:
    """The world position and world normal of every texel of ``uv_map`` at ``size``², baked
    by Cycles (types POSITION and NORMAL, object space turned into world space here), and
    which texels lie on the islands (the bake writes alpha 1 there, margin 0)."""
    image = bpy.data.images.new("Sfumato Bake", size, size, alpha=True, float_buffer=True)
    image.colorspace_settings.name = "Non-Color"
    material = bpy.data.materials.new("Sfumato Bake")
    try:
        if bpy.app.version < (5, 0, 0):
            material.use_nodes = True
        node = material.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = image
        material.node_tree.nodes.active = node
        with _temporary_copy(obj) as copy, _bake_settings(scene), _only_selected(copy):
            copy.data.uv_layers.active = copy.data.uv_layers[uv_map]
            slots = copy.data.materials
            if not len(slots):
                slots.append(material)
            for i in range(len(slots)):
                slots[i] = material
            for slot in copy.material_slots:
                slot.link = "DATA"
            position = _bake(image, "POSITION")
            normal = _bake(image, "NORMAL", normal_space="OBJECT")
    finally:
        bpy.data.materials.remove(material)
        bpy.data.images.remove(image)
    texels = position[..., 3] > 0.5
    # Normals transform by the inverse transpose: world k = Σᵢ localᵢ · inv[i, k]. Plane by
    # plane in float32 (an N×3 matmul in float64 took 3 s at 2048²; this ~0.3 s).
    inverse = np.linalg.inv(np.array(obj.matrix_world, dtype=np.float64)[:3, :3])
    local = [normal[..., i] * np.float32(2.0) - np.float32(1.0) for i in range(3)]  # 0…1 → −1…1
    world = np.empty((*texels.shape, 3), dtype=np.float32)
    for k in range(3):
        np.multiply(local[0], np.float32(inverse[0, k]), out=world[..., k])
        world[..., k] += local[1] * np.float32(inverse[1, k])
        world[..., k] += local[2] * np.float32(inverse[2, k])
    length = np.sqrt(world[..., 0] ** 2 + world[..., 1] ** 2 + world[..., 2] ** 2)
    unit = texels & (length > 1e-8)
    world /= np.where(unit, length, np.float32(1.0))[..., None]
    world[~unit] = 0.0
    pos = np.ascontiguousarray(position[..., :3])
    pos[~texels] = 0.0
    return Baked(pos, world, texels)


def _bake(image: Any, kind: str, **options: Any) -> np.ndarray:
    """Bake ``kind`` into the (cleared) image; its pixels, row 0 at the top."""
    width, height = image.size
    image.pixels.foreach_set(np.zeros(width * height * 4, dtype=np.float32))
    bpy.ops.object.bake(type=kind, margin=0, use_clear=False, **options)
    out = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(out)
    return out.reshape(height, width, 4)[::-1]


@contextlib.contextmanager
def _bake_settings(scene: Any) -> Iterator[None]:
    """Cycles on the CPU, one sample, no margin, baking into the active image node; every
    render and bake setting restored afterwards."""
    owners = [scene.render, scene.cycles, scene.render.bake]
    saved = [(o, passes.snapshot(o)) for o in owners]
    try:
        scene.render.engine = "CYCLES"
        scene.cycles.device, scene.cycles.samples = "CPU", 1
        bake = scene.render.bake
        bake.target, bake.margin, bake.use_clear = "IMAGE_TEXTURES", 0, False
        bake.use_selected_to_active, bake.use_cage = False, False
        yield
    finally:
        for owner, values in saved:
            passes.restore(owner, values)


@contextlib.contextmanager
def _temporary_copy(obj: Any) -> Iterator[Any]:
    """A copy of the object with its own mesh, linked to the scene for as long as needed."""
    copy = obj.copy()
    copy.data = obj.data.copy()
    copy.name = f"{obj.name} (Sfumato bake)"
    bpy.context.scene.collection.objects.link(copy)
    try:
        yield copy
    finally:
        mesh = copy.data
        bpy.data.objects.remove(copy)
        bpy.data.meshes.remove(mesh)
        bpy.context.view_layer.update()  # else the view layer still lists it (as None)


@contextlib.contextmanager
def _only_selected(obj: Any) -> Iterator[None]:
    """``obj`` alone selected and active (what bake and Edit Mode act on); the user's
    selection and active object put back afterwards."""
    layer = bpy.context.view_layer
    selected = [o.name for o in layer.objects if o is not None and o.select_get()]
    active = layer.objects.active.name if layer.objects.active is not None else None
    for o in layer.objects:
        if o is not None:
            o.select_set(False)
    obj.hide_set(False)
    obj.select_set(True)
    layer.objects.active = obj
    try:
        yield
    finally:
        for o in layer.objects:
            if o is not None:
                o.select_set(o.name in selected)
        layer.objects.active = bpy.data.objects.get(active) if active else None


# ------------------------------------------------------------------------------------ views


def view_passes(
    scene: Any, camera: Any, view_layer: Any, obj: Any, uv_map: str, width: int, height: int
) -> ViewPasses:
    """Depth, camera-space normal, UV and the target's mask from one render: the UV pass
    reads the render-active map, so ``uv_map`` is made it for the render; the mask is where
    the object index pass shows the target (given an index no other object has)."""
    layers = obj.data.uv_layers
    render_before = next((x.name for x in layers if x.active_render), None)
    index_before = obj.pass_index
    mark = max([0, *(o.pass_index for o in scene.objects if o != obj)]) + 1
    try:
        layers[uv_map].active_render = True
        obj.pass_index = mark
        extra = [(view_layer, "use_pass_uv", True), (view_layer, "use_pass_object_index", True)]
        found = passcapture.render_layers(scene, camera, view_layer, width, height, extra)
    finally:
        obj.pass_index = index_before
        if render_before is not None and render_before in layers:
            layers[render_before].active_render = True
    base = passes.passes_of(found, camera)
    index = passes.channel(found, "IndexOB.X", "Object Index.X")
    mask = (index > np.float32(mark - 0.5)) & (index < np.float32(mark + 0.5))
    mask &= ~base.background
    uv = np.zeros((*mask.shape, 2), dtype=np.float32)  # float32 throughout, no temporaries
    np.copyto(uv[..., 0], passes.channel(found, "UV.U"), where=mask)
    np.copyto(uv[..., 1], passes.channel(found, "UV.V"), where=mask)
    return ViewPasses(base.depth, base.normal, uv, mask)
