"""What each action sends and what it does with the answer.

``prepare_*`` check the scene (with errors that say the fix), render what the job needs and
build the protocol job; ``apply`` puts a result into the scene and the history. The
operators are thin wrappers around these, so the same code runs from the panel, from
scripts (``wait=True``) and from the timer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import bpy
import numpy as np

from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    Job,
    JobParams,
    LoraRef,
    Result,
    Task,
    Tile,
    Welcome,
)

from . import geometry, passes, scene
from .bridge import Pending


class UserError(Exception):
    """Something the user can fix; the message says how."""


# ---------------------------------------------------------------------------------- shared


def params(
    settings: Any, welcome: Welcome, *, width: int, height: int, tile: Tile = Tile.NONE
) -> JobParams:
    """The panel's settings as job parameters, sending only what this server announced."""
    caps = set(welcome.capabilities)
    if settings.models and settings.model and settings.model not in settings.models:
        names = ", ".join(m.name for m in settings.models)
        raise UserError(f"model {settings.model!r} is not on this server; pick one of: {names}")
    loras = tuple(LoraRef(lora.name, lora.weight) for lora in settings.loras if lora.use)
    if loras and "lora" not in caps:
        raise UserError("this server does not apply LoRAs (no 'lora' capability); untick them")
    if tile is not Tile.NONE and "tile" not in caps:
        raise UserError(
            f"this server cannot make tiling images (no 'tile' capability, needed for "
            f"tile={tile.value}); update the Sfumato server"
        )
    steps = settings.steps
    return JobParams(
        prompt=settings.prompt,
        negative=settings.negative,
        width=width,
        height=height,
        steps=steps,
        guidance=settings.guidance,
        seed=None if settings.random_seed else settings.seed,
        strength=settings.strength,
        model=settings.model or None,
        loras=loras,
        tile=tile,
        preview_every=max(1, steps // 8) if "preview" in caps else 0,
    )


def _job_id(kind: str) -> str:
    return f"blender-{kind.lower()}-{uuid.uuid4().hex[:12]}"


def _camera(context: Any) -> Any:
    camera = context.scene.camera
    if camera is None or camera.type != "CAMERA":
        raise UserError(
            "the scene has no active camera: add one (Add ▸ Camera) and make it active "
            "(View ▸ Cameras ▸ Set Active Object as Camera)"
        )
    return camera


def _selected_meshes(context: Any) -> list[Any]:
    meshes = [o for o in context.selected_objects if o.type == "MESH"]
    if not meshes:
        raise UserError("select the mesh objects to texture (click them in the viewport)")
    return meshes


def _camera_frame(context: Any, settings: Any) -> tuple[int, int]:
    render = context.scene.render
    return geometry.frame_size(render.resolution_x, render.resolution_y, settings.resolution)


def _depth_control(found: passes.Passes, strength: float) -> Control:
    return Control(
        ControlKind.DEPTH,
        Array.from_numpy(found.depth[..., None]),
        mask=Array.from_numpy((found.background * np.uint8(255)).astype(np.uint8)[..., None]),
        strength=strength,
    )


def _require_control(welcome: Welcome) -> None:
    if "control" not in welcome.capabilities:
        raise UserError(
            "this server takes no depth/normal controls (no 'control' capability); update the "
            "Sfumato server"
        )


# ---------------------------------------------------------------------------------- prepare


def prepare_texture(context: Any, settings: Any, welcome: Welcome) -> Pending:
    """Texture from View: depth + normals from the active camera steer a generated image
    that is then projected onto the selected meshes."""
    camera, meshes = _camera(context), _selected_meshes(context)
    _require_control(welcome)
    width, height = _camera_frame(context, settings)
    job_params = params(settings, welcome, width=width, height=height)
    found = passes.render_passes(context.scene, camera, context.view_layer, width, height)
    normal = Control(
        ControlKind.NORMAL,
        Array.from_numpy(found.normal.astype(np.float16)),
        strength=settings.control_strength,
    )
    controls = (_depth_control(found, settings.control_strength), normal)
    to_camera, projection = scene.camera_matrices(
        camera, context.evaluated_depsgraph_get(), width, height
    )
    return Pending(
        Job(_job_id("texture"), Task.GENERATE, job_params, controls=controls),
        "TEXTURE",
        context.scene.name,
        tuple(o.name for o in meshes),
        {
            "camera": camera.name,
            "uv_map": f"Sfumato {camera.name}"[:63],
            "world_to_camera": to_camera.tolist(),
            "projection": projection.tolist(),
        },
    )


def prepare_world(context: Any, settings: Any, welcome: Welcome) -> Pending:
    """World Background: a 2:1 panorama that wraps left to right (tile=x)."""
    width, height = geometry.frame_size(2, 1, settings.resolution)
    job_params = params(settings, welcome, width=width, height=height, tile=Tile.X)
    job = Job(_job_id("world"), Task.GENERATE, job_params)
    return Pending(job, "WORLD", context.scene.name)


def prepare_backdrop(context: Any, settings: Any, welcome: Welcome) -> Pending:
    """Camera Backdrop: a picture for the camera frame, steered by the scene's depth so that
    it leaves room where the objects stand; placed behind the farthest of them."""
    camera = _camera(context)
    _require_control(welcome)
    width, height = _camera_frame(context, settings)
    job_params = params(settings, welcome, width=width, height=height)
    found = passes.render_passes(context.scene, camera, context.view_layer, width, height)
    far = max(found.far, scene.farthest_depth(context.scene, camera)) * 1.1
    far = far or min(camera.data.clip_end * 0.5, 50.0)  # an empty frame: halfway out
    job = Job(
        _job_id("backdrop"),
        Task.GENERATE,
        job_params,
        controls=(_depth_control(found, settings.control_strength),),
    )
    distance = min(far, camera.data.clip_end * 0.99)
    return Pending(
        job, "BACKDROP", context.scene.name, (), {"camera": camera.name, "distance": distance}
    )


def prepare_inpaint(context: Any, settings: Any, welcome: Welcome) -> Pending:
    """Inpaint Texture: regenerate the selected faces' part of the active object's texture
    (or a painted mask's); the server returns pixels outside the mask unchanged."""
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise UserError("make the textured mesh the active object (click it last)")
    if obj.mode == "EDIT":
        obj.update_from_editmode()  # face selection lives in the edit mesh until synced
    try:
        material, node = scene.texture_node(obj)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    pixels = passes.image_pixels(node.image)[..., :3]
    height, width = pixels.shape[:2]
    if settings.mask_image is not None:
        try:
            mask = passes.mask_pixels(settings.mask_image, width, height)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        polygons = scene.uv_polygons(obj, scene.uv_map_of(node), selected_only=True)
        mask = geometry.rasterize(polygons, width, height, settings.mask_grow)
    if not mask.any():
        raise UserError(
            "nothing to regenerate: select faces in Edit Mode (face select) or pick a painted "
            "mask image (white = regenerate)"
        )
    job_params = params(settings, welcome, width=width, height=height)
    job = Job(
        _job_id("inpaint"),
        Task.INPAINT,
        job_params,
        image=Array.from_numpy(pixels),
        mask=Array.from_numpy(mask[..., None]),
    )
    data = {"material": material.name, "node": node.name, "source": node.image.name}
    return Pending(job, "INPAINT", context.scene.name, (obj.name,), data)


def prepare_seamless(context: Any, settings: Any, welcome: Welcome) -> Pending:
    """Seamless Material: a square texture that tiles in both directions (tile=xy)."""
    meshes = _selected_meshes(context)
    side = geometry.frame_size(1, 1, settings.resolution)[0]
    job_params = params(settings, welcome, width=side, height=side, tile=Tile.XY)
    job = Job(_job_id("seamless"), Task.GENERATE, job_params)
    return Pending(job, "SEAMLESS", context.scene.name, tuple(o.name for o in meshes))


PREPARE: dict[str, Callable[[Any, Any, Welcome], Pending]] = {
    "TEXTURE": prepare_texture,
    "WORLD": prepare_world,
    "BACKDROP": prepare_backdrop,
    "INPAINT": prepare_inpaint,
    "SEAMLESS": prepare_seamless,
}


# ---------------------------------------------------------------------------------- apply


def provenance(pending: Pending, result: Result) -> dict[str, Any]:
    """What made an image, kept on the image so the .blend says it (prompt, seed, model …)."""
    p = pending.job.params
    return {
        "job_id": result.id,
        "kind": pending.kind.lower(),
        "task": result.task.value,
        "prompt": result.prompt or p.prompt,
        "negative": p.negative,
        "seed": int(result.seeds[0]),
        "model": result.model,
        "loras": {lora.name: lora.weight for lora in p.loras},
        "steps": p.steps,
        "guidance": float(p.guidance),
        "tile": p.tile.value,
        "tiny": bool(result.tiny),
    }


def apply(target_scene: Any, pending: Pending, result: Result) -> str:
    """Put a finished job's image where it belongs and record it in the history; returns
    what was done, for the status line. Runs on the main thread (timer or wait)."""
    if not result.images:
        raise ValueError(f"job {result.id} returned no image")
    label = pending.job.params.prompt[:40] or "untitled"
    image = scene.new_image(
        f"Sfumato {pending.kind.title()} {label}",
        result.images[0].to_numpy(),
        provenance(pending, result),
    )
    entry = target_scene.sfumato.history.add()
    entry.name, entry.kind, entry.image, entry.job_id = label, pending.kind, image, result.id
    entry.prompt, entry.seed, entry.model = pending.job.params.prompt, result.seeds[0], result.model
    target_scene.sfumato.history_index = len(target_scene.sfumato.history) - 1
    APPLY[pending.kind](target_scene, pending, image, entry)
    return f"{pending.kind.title().lower()} from job {result.id} applied (seed {result.seeds[0]})"


def _object(name: str) -> Any:
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise LookupError(f"object {name!r} was deleted or renamed while the job ran")
    return obj


def _apply_texture(target_scene: Any, pending: Pending, image: Any, entry: Any) -> None:
    d = pending.data
    entry.uv_map, entry.camera = d["uv_map"], bpy.data.objects.get(d["camera"])
    to_camera, projection = np.array(d["world_to_camera"]), np.array(d["projection"])
    for name in pending.targets:
        obj = _object(name)
        scene.set_uv_map(obj, d["uv_map"], scene.projection_uvs(obj, to_camera, projection))
        _record(entry, obj, scene.texture_material(f"Sfumato {obj.name}", image, d["uv_map"]))


def _apply_seamless(target_scene: Any, pending: Pending, image: Any, entry: Any) -> None:
    for name in pending.targets:
        obj = _object(name)
        uv = obj.data.uv_layers.active
        _record(entry, obj, scene.texture_material(f"Sfumato {obj.name}", image, uv and uv.name))


def _record(entry: Any, obj: Any, material: Any) -> None:
    target = entry.targets.add()
    target.object, target.material = obj, material
    for previous in scene.assign_material(obj, material):
        target.previous.add().material = previous


def _apply_world(target_scene: Any, pending: Pending, image: Any, entry: Any) -> None:
    scene.set_world_environment(target_scene, image)


def _apply_backdrop(target_scene: Any, pending: Pending, image: Any, entry: Any) -> None:
    camera = _object(pending.data["camera"])
    entry.camera, entry.distance = camera, pending.data["distance"]
    scene.camera_backdrop(target_scene, camera, image, pending.data["distance"])


def _apply_inpaint(target_scene: Any, pending: Pending, image: Any, entry: Any) -> None:
    obj = _object(pending.targets[0])
    material = bpy.data.materials.get(pending.data["material"])
    node = material.node_tree.nodes.get(pending.data["node"]) if material else None
    if node is None:
        raise LookupError(f"the texture node of {obj.name} was removed while the job ran")
    entry.previous_image = node.image
    image[scene.PROVENANCE]["source_image"] = pending.data["source"]
    node.image = image
    target = entry.targets.add()
    target.object, target.material = obj, material


APPLY: dict[str, Callable[[Any, Pending, Any, Any], None]] = {
    "TEXTURE": _apply_texture,
    "WORLD": _apply_world,
    "BACKDROP": _apply_backdrop,
    "INPAINT": _apply_inpaint,
    "SEAMLESS": _apply_seamless,
}


# ---------------------------------------------------------------------------------- history


def reapply(target_scene: Any, entry: Any) -> None:
    """Show a past result again where it was first applied."""
    if entry.image is None:
        raise LookupError("this result's image was deleted")
    if entry.kind == "WORLD":
        scene.set_world_environment(target_scene, entry.image)
    elif entry.kind == "BACKDROP":
        if entry.camera is None:
            raise LookupError("the camera of this backdrop was deleted")
        scene.camera_backdrop(target_scene, entry.camera, entry.image, entry.distance)
    elif entry.kind == "INPAINT":
        for target in entry.targets:
            if target.object is not None:
                scene.texture_node(target.object)[1].image = entry.image
    else:
        for target in entry.targets:
            if target.object is not None and target.material is not None:
                scene.assign_material(target.object, target.material)


def restore(entry: Any) -> None:
    """Undo a result: the materials (or the texture) its objects had before."""
    for target in entry.targets:
        if target.object is None:
            continue
        if entry.kind == "INPAINT" and entry.previous_image is not None:
            scene.texture_node(target.object)[1].image = entry.previous_image
        elif len(target.previous):
            if len(target.previous) == 1 and target.previous[0].material is None:
                target.object.data.materials.clear()  # it had no material before
            else:
                scene.restore_materials(target.object, [p.material for p in target.previous])
