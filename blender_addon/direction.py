"""Per-object prompts and a reference picture (issue 16.4): regions and references in Blender.

An object's own words live on the object (``Object.sfumato_prompt``, saved with it, so a
duplicate keeps them); Texture from View renders the object index pass with its passes, each
prompted object's ``pass_index`` set for that render only and put back whatever happens, and
sends one region per object the camera sees (the scene prompt is the shared one). The
reference picture (``Scene.sfumato_reference``: an image datablock and a weight) steers World
Background and Camera Backdrop. The host-neutral half (masks from the index, the checks the
server makes) is ``sfumato.hostdirection``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import bpy
import numpy as np
from bpy.props import FloatProperty, PointerProperty, StringProperty

from sfumato import hostdirection
from sfumato.protocol import Job, Reference, Region

from . import jobs, panels, passcapture, passes

INDEX_CHANNELS = ("IndexOB.X", "Object Index.X")  # 4.2's name, then 5.x's


class SfumatoObjectPrompt(bpy.types.PropertyGroup):
    """``Object.sfumato_prompt``: what this object is, for Texture from View's regions."""

    prompt: StringProperty(
        name="Object Prompt",
        description="What this object is (e.g. 'a brass lamp'); used where the camera sees "
        "it, on top of the scene prompt. Leave empty to use the scene prompt alone",
    )
    negative: StringProperty(name="Object Negative", description="What to avoid on this object")


class SfumatoReference(bpy.types.PropertyGroup):
    """``Scene.sfumato_reference``: a picture whose look Texture from View (and Live's Texture
    mode), World Background and Camera Backdrop follow (an IP-Adapter reference on the
    server)."""

    image: PointerProperty(
        name="Reference",
        type=bpy.types.Image,
        description="A picture whose style and content Texture from View, the world and the "
        "backdrop follow",
    )
    weight: FloatProperty(
        name="Reference Weight", default=1.0, min=0.0, max=2.0,
        description="How strongly the reference steers the picture (0: not at all)",
    )  # fmt: skip


class SFUMATO_PT_direction(panels._Panel, bpy.types.Panel):
    bl_label = "Object Prompt & Reference"
    bl_parent_id = "SFUMATO_PT_main"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        obj = context.active_object
        if obj is not None and obj.type == "MESH":
            layout.label(text=f"{obj.name} (Texture from View)", icon="OBJECT_DATA")
            layout.prop(obj.sfumato_prompt, "prompt", text="Prompt")
            layout.prop(obj.sfumato_prompt, "negative", text="Negative")
        else:
            layout.label(text="Click a mesh to give it its own prompt", icon="INFO")
        ref = context.scene.sfumato_reference
        layout.label(text="Texture from View, World, Backdrop", icon="IMAGE_DATA")
        layout.template_ID(ref, "image", open="image.open")
        layout.prop(ref, "weight")


CLASSES = (SfumatoObjectPrompt, SfumatoReference, SFUMATO_PT_direction)


def register() -> None:
    bpy.types.Object.sfumato_prompt = PointerProperty(type=SfumatoObjectPrompt)
    bpy.types.Scene.sfumato_reference = PointerProperty(type=SfumatoReference)


def unregister() -> None:
    del bpy.types.Scene.sfumato_reference
    del bpy.types.Object.sfumato_prompt


# ------------------------------------------------------------------------------------ regions


def texts_of(objects: Sequence[Any]) -> dict[int, hostdirection.RegionText]:
    """Index (1, 2, … in the order given) → the object's own words, for those that have any."""
    out = {}
    for i, obj in enumerate(objects, start=1):
        own = obj.sfumato_prompt
        if own.prompt.strip():
            out[i] = hostdirection.RegionText(own.prompt.strip(), own.negative.strip())
    return out


def with_own_words(params: Any, obj: Any) -> Any:
    """Texture Object paints one object, so its own prompt needs no region: it joins the
    scene prompt (and its negative the scene negative) for every view of the object."""
    own = obj.sfumato_prompt
    words, negative = own.prompt.strip(), own.negative.strip()
    if not words and not negative:
        return params

    def join(a: str, b: str) -> str:
        return ", ".join(part for part in (a.strip(), b) if part)

    return dataclasses.replace(
        params, prompt=join(params.prompt, words), negative=join(params.negative, negative)
    )


def passes_and_regions(
    scene: Any, camera: Any, view_layer: Any, objects: Sequence[Any], width: int, height: int,
    server: jobs.Server,
) -> tuple[passes.Passes, tuple[Region, ...]]:  # fmt: skip
    """The depth and normal passes, and one region per object in ``objects`` that has a
    prompt and that the camera sees, from the same render (the index pass rides along). Every
    object's ``pass_index`` is set for the render (0 for the others: the user's indices would
    alias ours) and put back afterwards, also when the render fails."""
    texts = texts_of(objects)
    if not texts:
        return passcapture.render_passes(scene, camera, view_layer, width, height), ()
    if not jobs.offer_of(server).has("regions"):
        raise jobs.UserError(
            "this server cannot give objects their own prompts (no 'regions' capability): "
            "clear the Object Prompt of "
            + ", ".join(o.name for i, o in enumerate(objects, 1) if i in texts)
            + ", or update the Sfumato server"
        )
    saved = [(o, o.pass_index) for o in scene.objects]
    try:
        for o in scene.objects:
            o.pass_index = 0
        for i, obj in enumerate(objects, start=1):
            obj.pass_index = i if i in texts else 0
        extra = [(view_layer, "use_pass_object_index", True)]
        layers = passcapture.render_layers(scene, camera, view_layer, width, height, extra)
    finally:
        for o, index in saved:
            o.pass_index = index
    found = passes.passes_of(layers, camera)
    index = np.rint(passes.channel(layers, *INDEX_CHANNELS)).clip(0, 255).astype(np.uint8)
    return found, hostdirection.regions_from_index(index.tobytes(), width, height, texts)


# --------------------------------------------------------------------------------- references


def references(scene: Any, server: jobs.Server) -> tuple[Reference, ...]:
    """The scene's reference picture, scaled to what the encoder needs; none when no image is
    picked or its weight is 0 (it would change nothing)."""
    ref = getattr(scene, "sfumato_reference", None)
    if ref is None or ref.image is None or ref.weight <= 0.0:
        return ()
    if not jobs.offer_of(server).has("reference"):
        raise jobs.UserError(
            "this server takes no reference pictures (no 'reference' capability): clear the "
            "Reference image in the Object Prompt & Reference panel, or update the server"
        )
    try:
        rgb = passes.image_pixels(ref.image)[..., :3]
    except ValueError as exc:
        raise jobs.UserError(f"{exc}; pick another Reference image") from None
    height, width = rgb.shape[:2]
    w, h = hostdirection.reference_size(width, height)
    rows = (np.arange(h) * height // h)[:, None]
    cols = (np.arange(w) * width // w)[None, :]
    small = np.ascontiguousarray(rgb[rows, cols])
    return (hostdirection.reference(small.tobytes(), w, h, weight=float(ref.weight)),)


def directed(
    job: Job, server: jobs.Server, refs: tuple[Reference, ...] = (),
    regions: tuple[Region, ...] = (),
) -> Job:  # fmt: skip
    """``job`` with these references and regions, refused here as the server would."""
    if not refs and not regions:
        return job
    try:
        return hostdirection.directed(job, refs, regions, jobs.offer_of(server).limits)
    except ValueError as exc:
        raise jobs.UserError(str(exc)) from None
