"""Arrays → Blender: images (new ones, and inpainted copies of the user's), materials and the
texture they show, the UV outlines of faces, the world, a camera backdrop. The other module
(with ``passes``) that touches bpy's image APIs; the camera projection itself is a modifier,
in ``projection``.

Pixels go through ``foreach_set`` in one call; Blender stores image rows bottom to top while
the protocol sends them top to bottom, so every write flips once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bpy
import numpy as np

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


def inpainted_image(
    name: str,
    source: Any,
    generated: np.ndarray,
    mask: np.ndarray,
    provenance: Mapping[str, Any] | None = None,
) -> Any:
    """A copy of ``source`` with the generated pixels (uint8 sRGB, row 0 at the top) inside
    ``mask`` (H×W[×1], ≥ 128 inside) and nothing else changed: pixels outside the mask and
    the alpha channel everywhere are the source's values bit for bit, a float image stays
    float with its full range (4.0 stays 4.0), also once saved and read back.
    The server sees and returns 8-bit sRGB colour only, so only colour inside the mask may
    come from it (decoded to linear for float images, as ``passes.image_pixels`` encoded it)."""
    width, height = source.size
    if tuple(generated.shape[:2]) != (height, width) or tuple(mask.shape[:2]) != (height, width):
        raise ValueError(
            f"the inpainted image is {generated.shape[1]}×{generated.shape[0]} but the texture "
            f"{source.name!r} is now {width}×{height}; it was resized while the job ran: "
            "inpaint again"
        )
    channels = source.channels
    flat = np.empty(width * height * channels, dtype=np.float32)
    source.pixels.foreach_get(flat)
    out = np.zeros((height, width, 4), dtype=np.float32)
    out[..., 3] = 1.0
    before = flat.reshape(height, width, channels)
    if channels >= 3:
        out[..., : min(channels, 4)] = before[..., :4]
    else:  # grey (and grey + alpha): the colour channels repeat it
        out[..., :3] = before[..., :1]
        out[..., 3] = before[..., 1] if channels == 2 else 1.0
    colour = generated[::-1, :, :3].astype(np.float32) / np.float32(255.0)  # rows bottom up
    if source.is_float:
        colour = srgb_to_linear(colour)
    inside = np.asarray(mask)[::-1].reshape(height, width) >= 128
    if channels < 3:
        colour = np.repeat(colour.mean(axis=-1, keepdims=True, dtype=np.float32), 3, axis=-1)
    out[inside, :3] = colour[inside]
    image = bpy.data.images.new(
        name, width, height, alpha=channels in (2, 4), float_buffer=bool(source.is_float)
    )
    _describe_like(image, source)
    image.pixels.foreach_set(out.ravel())
    image.update()
    image.pack()
    if provenance is not None:
        image[PROVENANCE] = dict(provenance)
    return image


def _describe_like(image: Any, source: Any) -> None:
    """Give the copy the colour space and alpha mode that keep its pixels as the source's,
    in the session and after the packed copy is read back. A byte buffer holds the values
    its colour space names: copy both. A float buffer is scene-linear and premultiplied
    whatever file it came from (a 16-bit PNG is sRGB and straight on disk), and the copy is
    packed as OpenEXR: it must say linear (or Non-Color for data) and premultiplied, or
    reading the EXR back would decode or premultiply the values a second time."""
    if not source.is_float:
        image.colorspace_settings.name = source.colorspace_settings.name
        image.alpha_mode = source.alpha_mode
        return
    if source.colorspace_settings.is_data:
        image.colorspace_settings.name = source.colorspace_settings.name
    if source.alpha_mode in ("STRAIGHT", "PREMUL"):
        image.alpha_mode = "PREMUL"
    else:  # CHANNEL_PACKED, NONE: alpha is not about colour; keep what the user chose
        image.alpha_mode = source.alpha_mode


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """The inverse of ``passes.linear_to_srgb`` (the sRGB transfer function)."""
    return np.where(srgb <= 0.04045, srgb / 12.92, np.power((srgb + 0.055) / 1.055, 2.4)).astype(
        np.float32
    )


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


def uv_polygons(
    obj: Any, depsgraph: Any, uv_map: str | None, selected_only: bool
) -> list[np.ndarray]:
    """The UV outline of each (selected) face of the mesh as it renders: what a texture mask
    is rasterised from. Read from the evaluated mesh, because that is where the texture shows
    (a Mirror's copy, a projection modifier's UV map exist only there) and because in Edit
    Mode the mesh's own UV arrays are empty (the edit mesh holds them); the evaluated copy
    carries the current edit selection through the modifiers."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = mesh.uv_layers.get(uv_map or "") or mesh.uv_layers.active
        if layer is None:
            raise ValueError(
                f"{obj.name} has no UV map to find its faces in the texture; texture it with "
                "Texture from View, or add a UV map (UV ▸ Unwrap)"
            )
        uvs = np.empty(len(mesh.loops) * 2, dtype=np.float64)
        layer.uv.foreach_get("vector", uvs)
        uvs = uvs.reshape(-1, 2)
        count = len(mesh.polygons)
        starts, totals = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
        selected = np.ones(count, dtype=bool)
        mesh.polygons.foreach_get("loop_start", starts)
        mesh.polygons.foreach_get("loop_total", totals)
        if selected_only:
            mesh.polygons.foreach_get("select", selected)
        return [uvs[s : s + t] for s, t, keep in zip(starts, totals, selected, strict=True) if keep]
    finally:
        evaluated.to_mesh_clear()


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


def assign_material(obj: Any, material: Any) -> list[tuple[Any, str]]:
    """Put ``material`` in every slot of ``obj`` (one slot if it has none), linked to the
    object, not its mesh: linked duplicates share one mesh, and each keeps its own material
    (and its own projection); the mesh's own materials are never changed. Returns, per slot,
    the object's own material there and the slot's link (or [] when there was no slot), for
    ``restore_materials``."""
    previous = slot_state(obj)
    if not previous:
        obj.data.materials.append(None)  # an empty slot: the mesh's other users show nothing new
    for slot in obj.material_slots:
        slot.link = "OBJECT"
        slot.material = material
    return previous


def slot_state(obj: Any) -> list[tuple[Any, str]]:
    """Per material slot, the object's own material there and the slot's link ([] when it
    has no slot): what ``restore_materials`` puts back. Reading the object's own material
    needs the link switched to OBJECT for a moment; it is switched back."""
    state = []
    for slot in obj.material_slots:
        link = slot.link
        slot.link = "OBJECT"
        state.append((slot.material, link))
        slot.link = link
    return state


def restore_materials(obj: Any, previous: list[tuple[Any, str]]) -> None:
    """Put back what ``assign_material`` returned: each slot's own material and its link, and
    no slot for an object that had none (unless another user of the mesh fills that slot)."""
    if previous:
        for slot, (material, link) in zip(obj.material_slots, previous, strict=False):
            slot.link = "OBJECT"
            slot.material = material
            slot.link = link
        return
    for slot in obj.material_slots:
        slot.link = "OBJECT"
        slot.material = None
        slot.link = "DATA"
    mesh = obj.data
    others = [o for o in bpy.data.objects if o.data == mesh and o != obj]
    used = any(s.link == "OBJECT" and s.material for o in others for s in o.material_slots)
    if not used and all(m is None for m in mesh.materials):
        mesh.materials.clear()


def texture_node(obj: Any) -> tuple[Any, Any]:
    """The image texture that gives ``obj`` its colour: the one feeding the surface shader's
    Base Color (or Color), traced back through links from the material output (Mix, Hue …
    between them are fine), Sfumato's own first. A PBR material has several images, and the
    others (roughness, normal maps) are data, not pictures. Where several images feed the
    colour, or none does, the active node of the material (clicked last in the Shader
    Editor) decides; otherwise ValueError names the candidates and the fix."""
    candidates: list[str] = []
    for slot in obj.material_slots:
        tree = slot.material.node_tree if slot.material else None
        if tree is None:
            continue
        images = [n for n in tree.nodes if n.type == "TEX_IMAGE" and n.image is not None]
        if not images:
            continue
        colour = _colour_images(tree)
        ours = [n for n in colour if n.name == "Sfumato Texture"]
        active = tree.nodes.active
        if ours or len(colour) == 1:
            return slot.material, (ours or colour)[0]
        if active is not None and active in (colour or images):
            return slot.material, active
        names = ", ".join(f"{n.name!r} ({n.image.name})" for n in colour or images)
        candidates.append(
            f"material {slot.material.name!r}: "
            + (f"several images feed the colour: {names}" if colour else f"images {names}, none feeding Base Color")
        )  # fmt: skip
    if candidates:
        raise ValueError(
            f"cannot tell which texture of {obj.name} to inpaint ({'; '.join(candidates)}); "
            "connect the colour texture to the shader's Base Color, or click the image node to "
            "inpaint in the Shader Editor so that it is the active node"
        )
    raise ValueError(
        f"{obj.name} has no image texture to inpaint; texture it first (Texture from View or "
        "Seamless Material)"
    )


_COLOUR_INPUTS = ("Base Color", "Color")


def _colour_images(tree: Any) -> list[Any]:
    """Image texture nodes upstream of the active material output's colour: through shader
    mixes, then each shader's Base Color/Color, then any colour input of the nodes between."""
    outputs = [n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"]
    output = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if output is None:
        return []
    found: list[Any] = []
    queue, seen = [output.inputs["Surface"]], set()
    while queue:
        socket = queue.pop(0)
        for link in socket.links:
            node = link.from_node
            if node.name in seen or link.is_muted:
                continue
            seen.add(node.name)
            if node.type == "TEX_IMAGE":
                if node.image is not None:
                    found.append(node)
                continue
            shader = any(o.type == "SHADER" for o in node.outputs)
            for given in node.inputs:
                if (
                    node.type == "REROUTE"
                    or given.type == "SHADER"
                    or (given.type == "RGBA" and (not shader or given.name in _COLOUR_INPUTS))
                ):
                    queue.append(given)
    return found


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


def backdrop_distance(plane: Any) -> float:
    """How far in front of its camera a backdrop plane stands (its corners share one z in the
    camera's space, which is the plane's parent space); 0 for an empty mesh."""
    vertices = plane.data.vertices
    return float(-vertices[0].co.z) if len(vertices) else 0.0


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
