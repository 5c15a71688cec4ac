"""Arrays → Blender: images, camera-projection UVs, materials, the world, a camera backdrop.
The other module (with ``passes``) that touches bpy's image APIs.

Pixels go through ``foreach_set`` in one call; Blender stores image rows bottom to top while
the protocol sends them top to bottom, so every write flips once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy
import numpy as np

from . import geometry

PROVENANCE = "sfumato"  # the custom property on each result image
BACKDROP_TAG = "sfumato_backdrop"  # marks backdrop planes, which the passes leave out


# ------------------------------------------------------------------------------------ images


def new_image(name: str, pixels: np.ndarray, provenance: Mapping[str, Any] | None = None) -> Any:
    """A packed byte image from uint8 sRGB pixels (H×W×3|4, row 0 at the top), carrying its
    provenance so that a .blend says where each texture came from."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=pixels.shape[2] == 4)
    write_pixels(image, pixels)
    image.pack()
    if provenance is not None:
        image[PROVENANCE] = dict(provenance)
    return image


def write_pixels(image: Any, pixels: np.ndarray) -> None:
    """Replace an image's pixels (resizing it when needed) from uint8 sRGB, row 0 at the top."""
    height, width, channels = pixels.shape
    if tuple(image.size) != (width, height):
        image.scale(width, height)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., : min(channels, 3)] = pixels[..., : min(channels, 3)] / np.float32(255.0)
    if channels == 4:
        rgba[..., 3] = pixels[..., 3] / np.float32(255.0)
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    image.update()


def show_preview(image: Any, pixels: np.ndarray) -> Any:
    """Write a progress preview into ``image`` (made when None); not packed, not kept."""
    if image is None:
        height, width = pixels.shape[:2]
        image = bpy.data.images.new("Sfumato Preview", width, height)
    write_pixels(image, pixels)
    if image.preview is not None:
        image.preview.reload()
    return image


# ------------------------------------------------------------------------------------ UVs


def camera_matrices(
    camera: Any, depsgraph: Any, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """World → camera and camera → clip matrices for a width×height frame, as the passes were
    rendered (kept with the job, so UVs match the passes even if the camera moves meanwhile).
    Square pixels: width×height is the frame's display shape (pixel aspect already applied,
    as the passes are rendered), so the render's own pixel aspect must not stretch it again."""
    projection = camera.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=1.0, scale_y=1.0)
    return (
        np.array(camera.matrix_world.inverted(), dtype=np.float64),
        np.array(projection, dtype=np.float64),
    )


def projection_uvs(obj: Any, world_to_camera: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Per face corner, where its vertex lands in the camera frame (0…1): the UVs that make a
    texture rendered from the camera line up with the geometry."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    corners = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    to_world = np.array(obj.matrix_world, dtype=np.float64)
    points = co.reshape(-1, 3) @ to_world[:3, :3].T + to_world[:3, 3]
    return geometry.project(points, world_to_camera, projection)[corners]


def set_uv_map(obj: Any, name: str, uvs: np.ndarray) -> Any:
    """Write per-corner UVs into the UV map ``name`` (made if missing) and make it active for
    rendering, so the new material finds it even without a UV Map node."""
    layers = obj.data.uv_layers
    layer = layers.get(name) or layers.new(name=name)
    layer.uv.foreach_set("vector", np.ascontiguousarray(uvs, dtype=np.float32).ravel())
    layers.active = layer
    layer.active_render = True
    obj.data.update()
    return layer


def uv_polygons(obj: Any, uv_map: str | None, selected_only: bool) -> list[np.ndarray]:
    """The UV outline of each (selected) face: what a texture mask is rasterised from."""
    mesh = obj.data
    layer = mesh.uv_layers.get(uv_map or "") or mesh.uv_layers.active
    if layer is None:
        raise ValueError(f"{obj.name} has no UV map to find its faces in the texture")
    uvs = np.empty(len(mesh.loops) * 2, dtype=np.float64)
    layer.uv.foreach_get("vector", uvs)
    uvs = uvs.reshape(-1, 2)
    return [
        uvs[p.loop_start : p.loop_start + p.loop_total]
        for p in mesh.polygons
        if p.select or not selected_only
    ]


# ------------------------------------------------------------------------------------ materials


def use_nodes(owner: Any) -> None:
    """Blender < 5 needs node trees switched on; 5.0 always has them and deprecates the flag."""
    if bpy.app.version < (5, 0, 0):
        owner.use_nodes = True


def texture_material(name: str, image: Any, uv_map: str | None, *, emit: bool = False) -> Any:
    """A material that shows ``image`` through the UV map ``uv_map`` (or box-projected object
    coordinates when None); ``emit`` makes it unlit (a backdrop shows its picture as is)."""
    material = bpy.data.materials.new(name)
    use_nodes(material)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    texture = nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = "Sfumato Texture"
    texture.image = image
    texture.location = (-500, 0)
    if uv_map is not None:
        coords = nodes.new("ShaderNodeUVMap")
        coords.uv_map = uv_map
        links.new(coords.outputs["UV"], texture.inputs["Vector"])
    else:
        coords = nodes.new("ShaderNodeTexCoord")
        texture.projection = "BOX"
        texture.projection_blend = 0.2
        links.new(coords.outputs["Object"], texture.inputs["Vector"])
    coords.location = (-750, 0)
    if emit:
        shader = nodes.new("ShaderNodeEmission")
        links.new(texture.outputs["Color"], shader.inputs["Color"])
        links.new(shader.outputs["Emission"], out.inputs["Surface"])
    else:
        shader = nodes.new("ShaderNodeBsdfPrincipled")
        links.new(texture.outputs["Color"], shader.inputs["Base Color"])
        links.new(shader.outputs["BSDF"], out.inputs["Surface"])
    out.location = (300, 0)
    return material


def assign_material(obj: Any, material: Any) -> list[Any]:
    """Put ``material`` in every slot of ``obj`` (one slot if it has none) and return what the
    slots held, so the caller can keep it for an undo-able restore."""
    slots = obj.material_slots
    if not len(slots):
        obj.data.materials.append(material)
        return [None]
    previous = [slot.material for slot in slots]
    for slot in slots:
        slot.material = material
    return previous


def restore_materials(obj: Any, materials: list[Any]) -> None:
    for slot, material in zip(obj.material_slots, materials, strict=False):
        slot.material = material


def texture_node(obj: Any) -> tuple[Any, Any]:
    """The image texture an object shows: Sfumato's node if there is one, else the first image
    texture of its first material with one. Raises ValueError with the fix otherwise."""
    for slot in obj.material_slots:
        tree = slot.material.node_tree if slot.material else None
        if tree is None:
            continue
        nodes = [n for n in tree.nodes if n.type == "TEX_IMAGE" and n.image is not None]
        nodes.sort(key=lambda n: n.name != "Sfumato Texture")
        if nodes:
            return slot.material, nodes[0]
    raise ValueError(
        f"{obj.name} has no image texture to inpaint; texture it first (Texture from View or "
        "Seamless Material)"
    )


def uv_map_of(node: Any) -> str | None:
    """The UV map feeding an image texture node, when a UV Map node names one."""
    links = node.inputs["Vector"].links
    if links and links[0].from_node.type == "UVMAP":
        return str(links[0].from_node.uv_map) or None
    return None


# ------------------------------------------------------------------------------------ world, backdrop


def set_world_environment(scene: Any, image: Any) -> Any:
    """Make ``image`` (an equirectangular 2:1 panorama) the world's background."""
    world = scene.world or bpy.data.worlds.new("Sfumato World")
    scene.world = world
    use_nodes(world)
    nodes, links = world.node_tree.nodes, world.node_tree.links
    env = nodes.get("Sfumato Environment") or nodes.new("ShaderNodeTexEnvironment")
    env.name = env.label = "Sfumato Environment"
    env.image = image
    env.location = (-400, 0)
    background = next((n for n in nodes if n.type == "BACKGROUND"), None)
    background = background or nodes.new("ShaderNodeBackground")
    output = next((n for n in nodes if n.type == "OUTPUT_WORLD"), None)
    output = output or nodes.new("ShaderNodeOutputWorld")
    links.new(env.outputs["Color"], background.inputs["Color"])
    links.new(background.outputs["Background"], output.inputs["Surface"])
    return world


def farthest_depth(scene: Any, camera: Any) -> float:
    """How far behind the camera plane the farthest rendered object reaches (bounding boxes:
    the passes see only front faces, and a backdrop must clear the backs too); 0 if none."""
    to_camera = np.array(camera.matrix_world.inverted(), dtype=np.float64)
    far = 0.0
    for obj in scene.objects:
        if obj.type not in {"MESH", "CURVE", "SURFACE", "META", "FONT"} or obj.hide_render:
            continue
        if obj.get(BACKDROP_TAG):
            continue
        box = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
        world = box @ np.array(obj.matrix_world)[:3, :3].T + np.array(obj.matrix_world)[:3, 3]
        depth = -(world @ to_camera[:3, :3].T + to_camera[:3, 3])[:, 2]
        far = max(far, float(depth.max()))
    return far


def camera_backdrop(scene: Any, camera: Any, image: Any, distance: float) -> Any:
    """Show ``image`` behind everything: as the camera's background image (the viewport) and
    on a plane that fills the frame at ``distance`` (renders). Returns the plane."""
    data = camera.data
    data.show_background_images = True
    ours = (b for b in data.background_images if b.image is None or PROVENANCE in b.image)
    background = next(ours, None) or data.background_images.new()  # replace our last one
    background.image = image
    background.display_depth = "BACK"
    background.frame_method = "FIT"
    frame = [np.array(v, dtype=np.float64) for v in data.view_frame(scene=scene)]
    corners = []
    for v in frame:  # top right, bottom right, bottom left, top left; camera space
        scale = distance / -v[2] if data.type == "PERSP" else 1.0
        corners.append((v[0] * scale, v[1] * scale, -distance))
    name = f"Sfumato Backdrop {camera.name}"
    if (old := bpy.data.objects.get(name)) is not None:
        bpy.data.objects.remove(old)  # one backdrop per camera: the latest
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(corners, [], [(2, 1, 0, 3)])  # counter-clockwise seen from the camera
    mesh.uv_layers.new(name="UVMap").uv.foreach_set("vector", [0, 0, 1, 0, 1, 1, 0, 1])
    plane = bpy.data.objects.new(name, mesh)
    plane.parent = camera  # moves with the camera, stays framed
    plane[BACKDROP_TAG] = True
    scene.collection.objects.link(plane)
    plane.data.materials.append(texture_material(name, image, "UVMap", emit=True))
    return plane
