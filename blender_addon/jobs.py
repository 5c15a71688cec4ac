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

import numpy as np

from sfumato.hostsession import HostError, Offer
from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    Job,
    JobParams,
    LoraRef,
    Task,
    Tile,
    Welcome,
)
from sfumato.protocol.messages import SEED_MAX

from . import geometry, passcapture, passes, scene
from .pending import BackdropTarget, InpaintTarget, Pending, TextureTarget, matrix

Server = Offer | Welcome  # what the server offers: the session's Offer (a Welcome in tests)


class UserError(Exception):
    """Something the user can fix; the message says how."""


# ---------------------------------------------------------------------------------- shared


def offer_of(server: Server) -> Offer:
    return Offer.of(server) if isinstance(server, Welcome) else server


def params(
    settings: Any, server: Server, *, width: int, height: int, tile: Tile = Tile.NONE
) -> JobParams:
    """The panel's settings as job parameters, checked against what this server offers (its
    capabilities, limits, models and LoRAs) before anything is rendered or sent. The LoRAs
    sent are the ticked ones that fit the chosen model (the panel lists only those)."""
    offer = offer_of(server)
    caps = set(offer.capabilities)
    usable = set(offer.usable_loras(settings.model or None))
    runtime = _runtime()
    ticked = runtime.loras if runtime is not None else ()
    loras = tuple(LoraRef(lora.name, lora.weight) for lora in ticked if lora.use)
    loras = tuple(lora for lora in loras if lora.name in usable or not offer.models)
    steps = settings.steps
    job_params = JobParams(
        prompt=settings.prompt,
        negative=settings.negative,
        width=width,
        height=height,
        steps=steps,
        guidance=settings.guidance,
        seed=None if settings.random_seed else parse_seed(settings.seed),
        strength=settings.strength,
        model=settings.model or None,
        loras=loras,
        tile=tile,
        preview_every=max(1, steps // 8) if "preview" in caps else 0,
    )
    try:
        offer.check_params(job_params)
    except HostError as exc:
        raise UserError(str(exc)) from None
    return job_params


def _runtime() -> Any:
    """The window manager's state (the LoRA list), or None outside Blender's data."""
    import bpy

    managers = bpy.data.window_managers
    return managers[0].sfumato if len(managers) and hasattr(managers[0], "sfumato") else None


def parse_seed(text: str) -> int:
    """The Seed field as the protocol's seed (0 … 2**32 − 1). The field is a string because
    Blender's integer properties are 32-bit signed and would lose half of the seeds."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > SEED_MAX:
        raise UserError(
            f"Seed {text!r} is not a whole number from 0 to {SEED_MAX}; type one, or tick "
            "Random Seed"
        )
    return int(value)


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
    """The selected meshes to texture, leaving out Sfumato's own backdrop planes (Select All
    selects them too, and they show a result already)."""
    meshes = [
        o for o in context.selected_objects if o.type == "MESH" and not o.get(scene.BACKDROP_TAG)
    ]
    if not meshes:
        raise UserError(
            "select the mesh objects to texture (click them in the viewport; Sfumato's backdrop "
            "planes are left out)"
        )
    for obj in meshes:
        if obj.mode == "EDIT":
            obj.update_from_editmode()  # the passes render the mesh data: sync the edits first
    return meshes


def _frame(aspect_x: float, aspect_y: float, settings: Any, server: Server) -> tuple[int, int]:
    """The image size for a frame of this aspect, within what this server accepts."""
    try:
        return geometry.frame_size(
            aspect_x, aspect_y, settings.resolution, server.limits.max_image_side
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _camera_frame(context: Any, settings: Any, welcome: Server) -> tuple[int, int]:
    """The render's frame as displayed (percentage and pixel aspect applied): the generated
    image covers exactly the camera's view, so its aspect must be the frame's."""
    r = context.scene.render
    aspect = geometry.render_aspect(
        r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y
    )
    return _frame(aspect, 1.0, settings, welcome)


def _depth_control(found: passes.Passes, strength: float) -> Control:
    return Control(
        ControlKind.DEPTH,
        Array.from_numpy(found.depth[..., None]),
        mask=Array.from_numpy((found.background * np.uint8(255)).astype(np.uint8)[..., None]),
        strength=strength,
    )


def _require_control(welcome: Server) -> None:
    if "control" not in welcome.capabilities:
        raise UserError(
            "this server takes no depth/normal controls (no 'control' capability); update the "
            "Sfumato server"
        )


# ---------------------------------------------------------------------------------- prepare


def prepare_texture(context: Any, settings: Any, welcome: Server) -> Pending:
    """Texture from View: depth + normals from the active camera steer a generated image
    that is then projected onto the selected meshes."""
    camera, meshes = _camera(context), _selected_meshes(context)
    _require_control(welcome)
    width, height = _camera_frame(context, settings, welcome)
    job_params = params(settings, welcome, width=width, height=height)
    from . import direction  # per-object prompts: regions from the index pass (issue 16.4)

    found, regions = direction.passes_and_regions(
        context.scene, camera, context.view_layer, meshes, width, height, welcome
    )
    normal = Control(
        ControlKind.NORMAL,
        Array.from_numpy(found.normal.astype(np.float16)),
        strength=settings.control_strength,
    )
    controls = (_depth_control(found, settings.control_strength), normal)
    to_camera, projection = scene.camera_matrices(
        camera, context.evaluated_depsgraph_get(), width, height
    )
    job = Job(_job_id("texture"), Task.GENERATE, job_params, controls=controls)
    refs = direction.references(context.scene, welcome)  # the look, beside the controls
    return Pending(
        direction.directed(job, welcome, refs, regions),
        "TEXTURE",
        context.scene.name,
        tuple(o.name for o in meshes),
        TextureTarget(
            camera=camera.name,
            # one name for the modifier, the UV map and the UV Map node: Blender keeps 63 bytes
            uv_map=f"Sfumato {camera.name}".encode()[:63].decode(errors="ignore"),
            world_to_camera=matrix(to_camera),
            projection=matrix(projection),
            stood=tuple((o.name, matrix(o.matrix_world)) for o in meshes),
        ),
    )


def prepare_world(context: Any, settings: Any, welcome: Server) -> Pending:
    """World Background: a 2:1 panorama that wraps left to right (tile=x)."""
    width, height = _frame(2, 1, settings, welcome)
    job_params = params(settings, welcome, width=width, height=height, tile=Tile.X)
    from . import direction

    job = Job(_job_id("world"), Task.GENERATE, job_params)
    job = direction.directed(job, welcome, direction.references(context.scene, welcome))
    return Pending(job, "WORLD", context.scene.name)


def prepare_backdrop(context: Any, settings: Any, welcome: Server) -> Pending:
    """Camera Backdrop: a picture for the camera frame, steered by the scene's depth so that
    it leaves room where the objects stand; placed behind the farthest of them."""
    camera = _camera(context)
    _require_control(welcome)
    width, height = _camera_frame(context, settings, welcome)
    job_params = params(settings, welcome, width=width, height=height)
    found = passcapture.render_passes(context.scene, camera, context.view_layer, width, height)
    far = max(found.far, scene.farthest_depth(context.scene, camera)) * 1.1
    far = far or min(camera.data.clip_end * 0.5, 50.0)  # an empty frame: halfway out
    job = Job(
        _job_id("backdrop"),
        Task.GENERATE,
        job_params,
        controls=(_depth_control(found, settings.control_strength),),
    )
    from . import direction

    job = direction.directed(job, welcome, direction.references(context.scene, welcome))
    distance = min(far, camera.data.clip_end * 0.99)
    return Pending(
        job, "BACKDROP", context.scene.name, (), BackdropTarget(camera.name, float(distance))
    )


def prepare_inpaint(context: Any, settings: Any, welcome: Server) -> Pending:
    """Inpaint Texture: regenerate the selected faces' part of the active object's texture
    (or a painted mask's); the server returns pixels outside the mask unchanged."""
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise UserError("make the textured mesh the active object (click it last)")
    if obj.mode == "EDIT":
        obj.update_from_editmode()  # face selection lives in the edit mesh until synced
    depsgraph = context.evaluated_depsgraph_get()
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
        try:
            polygons = scene.uv_polygons(obj, depsgraph, scene.uv_map_of(node), selected_only=True)
        except ValueError as exc:
            raise UserError(str(exc)) from None
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
    target = InpaintTarget(material.name, node.name, node.image.name)
    return Pending(job, "INPAINT", context.scene.name, (obj.name,), target)


def prepare_seamless(context: Any, settings: Any, welcome: Server) -> Pending:
    """Seamless Material: a square texture that tiles in both directions (tile=xy)."""
    meshes = _selected_meshes(context)
    side = _frame(1, 1, settings, welcome)[0]
    job_params = params(settings, welcome, width=side, height=side, tile=Tile.XY)
    job = Job(_job_id("seamless"), Task.GENERATE, job_params)
    return Pending(job, "SEAMLESS", context.scene.name, tuple(o.name for o in meshes))


PREPARE: dict[str, Callable[[Any, Any, Server], Pending]] = {
    "TEXTURE": prepare_texture,
    "WORLD": prepare_world,
    "BACKDROP": prepare_backdrop,
    "INPAINT": prepare_inpaint,
    "SEAMLESS": prepare_seamless,
}
