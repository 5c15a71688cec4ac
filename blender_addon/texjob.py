"""Texture Object: what it sends (the target's UV-space maps and each texture camera's
passes, one ``multiview`` job) and what it does with the answer (the UV texture, gaps filled
from their neighbours, in a material on the object; the previous one kept for Restore).

The job itself is built and the result read by the host-neutral ``sfumato.hostmultiview``;
this module does the Blender half: which mesh, which UV map, the bake, the renders.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np

from sfumato import hostmultiview
from sfumato.protocol import Array, Paint, Result

from . import direction, jobs, scene, texbake, texcams, texmath
from .pending import ObjectTarget, Pending, matrix

Server = jobs.Server


def _target(context: Any) -> Any:
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        raise jobs.UserError("make the mesh to texture the active object (click it)")
    if context.mode != "OBJECT":
        raise jobs.UserError(
            "Texture Object bakes the mesh, which Blender does in Object Mode only: press Tab "
            "to leave Edit Mode (or the mode you are in) and run it again"
        )
    return obj


def prepare_texture_object(
    context: Any, settings: Any, server: Server, paint: Paint = Paint.GENERATE
) -> Pending:
    """Check the scene and the server, choose the UV map (the active one when it does not
    overlap itself, else a Smart UV Project map of Sfumato's own), bake the position and
    normal maps, render each texture camera's passes and build the job. ``paint`` POSITION
    asks the server's diagnostic (each view painted with the world positions it sees)."""
    obj = _target(context)
    offer = jobs.offer_of(server)
    if not offer.has("multiview"):
        raise jobs.UserError(
            "this server cannot texture whole objects (no 'multiview' capability); update "
            "the Sfumato server"
        )
    cameras = texcams.ordered(context.scene)
    if not cameras:
        raise jobs.UserError(
            "there are no texture cameras: press Add Texture Cameras (or add cameras to the "
            f"{texcams.COLLECTION!r} collection)"
        )
    side = jobs._frame(1, 1, settings, server)[0]  # square views: the object is framed round
    texturing = settings.texturing
    size = min(texturing.texture_size, offer.limits.max_image_side) // 8 * 8
    job_params = jobs.params(settings, server, width=side, height=side)
    job_params = dataclasses.replace(job_params, paint=paint)
    job_params = direction.with_own_words(job_params, obj)  # the object's own prompt
    depsgraph = context.evaluated_depsgraph_get()
    try:
        uv_map, made = texbake.choose_uv_map(obj, depsgraph)
    except ValueError as exc:
        raise jobs.UserError(str(exc)) from None
    baked = texbake.bake_maps(context.scene, obj, uv_map, size)
    if paint is Paint.POSITION:  # the box the colours are normalised in: the object's texels
        on = baked.position[baked.texels]
        box = (*on.min(axis=0).tolist(), *(on.max(axis=0) + 1e-6).tolist())
        job_params = dataclasses.replace(job_params, bounds=tuple(float(v) for v in box))
    views = []
    for cam in cameras:
        seen = texbake.view_passes(context.scene, cam, context.view_layer, obj, uv_map, side, side)
        to_camera, projection = scene.camera_matrices(cam, depsgraph, side, side)
        views.append(
            hostmultiview.ViewPasses(
                Array.from_numpy(seen.depth[..., None]),
                Array.from_numpy(seen.normal.astype(np.float32)),
                Array.from_numpy(seen.uv),
                Array.from_numpy(_u8(seen.mask)),
                tuple(float(v) for v in to_camera.ravel()),
                tuple(float(v) for v in projection.ravel()),
            )
        )
    try:
        job = hostmultiview.multiview_job(
            f"blender-object-{uuid.uuid4().hex[:12]}",
            job_params,
            views,
            Array.from_numpy(baked.position),
            Array.from_numpy(baked.normal),
            Array.from_numpy(_u8(baked.texels)),
            offer,
        )
    except hostmultiview.HostError as exc:
        raise jobs.UserError(str(exc)) from None
    target = ObjectTarget(uv_map, made, tuple(c.name for c in cameras), matrix(obj.matrix_world))
    return Pending(job, "OBJECT", context.scene.name, (obj.name,), target)


def _u8(mask: np.ndarray) -> np.ndarray:
    return (mask * np.uint8(255)).astype(np.uint8)[..., None]


# ------------------------------------------------------------------------------------ apply


@dataclasses.dataclass(frozen=True)
class Filled:
    """The texture as written into the image, and what the user is told about it."""

    pixels: np.ndarray  # T×T×4 uint8, row 0 at the top
    covered: np.ndarray  # T×T bool: a view saw the texel
    filled: np.ndarray  # T×T bool: no view saw it; filled from its neighbours
    line: str  # "97.8 % covered; 2.2 % filled"


def fill(pending: Pending, result: Result) -> Filled:
    """The result's texture with the island texels no view saw filled by dilation from the
    covered ones (and a two-texel margin beyond the islands against seams)."""
    inputs = pending.job.multiview
    if inputs is None:
        raise ValueError(f"job {pending.job.id} was sent without its multiview inputs")
    rgba = hostmultiview.read(result, len(inputs.views)).texture.to_numpy()
    texels = inputs.texels.to_numpy()[..., 0] >= 128
    if rgba.shape[:2] != texels.shape:
        raise ValueError(
            f"the texture of job {pending.job.id} is {rgba.shape[1]}×{rgba.shape[0]}, not the "
            f"{texels.shape[1]}×{texels.shape[0]} that was baked; update the Sfumato server"
        )
    covered = (rgba[..., 3] >= 128) & texels
    pixels, filled = texmath.dilate_fill(rgba, covered, texels)
    islands = max(1, int(texels.sum()))
    line = hostmultiview.coverage_line(covered.sum() / islands, filled.sum() / islands)
    return Filled(pixels, covered, filled, line)


def apply_object(target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Any) -> None:
    """Show the texture on the object through the painted UV map, in a material of its own
    (the object's previous materials recorded for Restore Previous)."""
    from . import results

    detail = pending.detail
    if not isinstance(detail, ObjectTarget):
        raise ValueError(f"job {pending.job.id} was sent without its ObjectTarget")
    obj = results._object(pending.targets[0])
    if detail.uv_map not in obj.data.uv_layers:
        raise LookupError(
            f"the UV map {detail.uv_map!r} of {obj.name} was removed while the job ran"
        )
    entry.uv_map = detail.uv_map
    target = entry.targets.add()
    layers = obj.data.uv_layers
    target.previous_uv = layers.active.name if layers.active is not None else ""
    target.previous_render_uv = next((x.name for x in layers if x.active_render), "")
    material = scene.texture_material(f"Sfumato {obj.name}", image, detail.uv_map)
    results._record(target, obj, material, changes)
    report = str(image[scene.PROVENANCE].get("coverage", ""))
    target_scene.sfumato.texturing.report = report
