"""The add-on's state, in two property groups.

``Scene.sfumato``: what belongs to the file — the settings of the next job and the history —
saved with the .blend and undone with it. ``WindowManager.sfumato``: what belongs to this
Blender session — the connection, the server's models and limits, the running job, its
progress and preview. Properties registered on the window manager are never saved, so a file
saved while connected (or mid-job) never reopens "Connected" or busy. Only the bridge writes
the runtime group, from the main thread.
"""

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import liveprops, texprops

CONNECTION_STATES = (
    ("DISCONNECTED", "Disconnected", "No server connection"),
    ("CONNECTING", "Connecting", "Waiting for the server's welcome"),
    ("CONNECTED", "Connected", "A server answers"),
)
# What a result was made for: decides how it is applied (and re-applied from the history).
KINDS = (
    ("TEXTURE", "Texture from View", "Projected from the camera onto the selected meshes"),
    ("WORLD", "World Background", "A 360° panorama as the world's environment"),
    ("BACKDROP", "Camera Backdrop", "A picture behind the scene, framed by the camera"),
    ("INPAINT", "Inpaint Texture", "A region of an existing texture, regenerated"),
    ("SEAMLESS", "Seamless Material", "A tileable texture in a material"),
    ("OBJECT", "Texture Object", "Painted from several cameras into the mesh's own UVs"),
)


class SfumatoModel(bpy.types.PropertyGroup):
    """A base model the server offers (welcome.models, kind base); ``name`` is its key."""

    family: StringProperty(name="Family")
    tiny: BoolProperty(name="Tiny", description="Random weights: images are noise")
    description: StringProperty(name="Description")


class SfumatoLora(bpy.types.PropertyGroup):
    """A LoRA the server offers; ``use`` and ``weight`` are the user's choice for the next job.
    The panel lists those of the chosen model's family; unapproved ones cannot be ticked."""

    use: BoolProperty(name="Use", description="Apply this LoRA to the next job")
    weight: FloatProperty(name="Weight", default=1.0, min=-4.0, max=4.0, soft_min=0.0, soft_max=1.5)
    family: StringProperty(name="Family")
    approved: BoolProperty(name="Approved", default=True)
    note: StringProperty(name="Note")  # why it cannot be used, or what it is


class SfumatoMaterialRef(bpy.types.PropertyGroup):
    material: PointerProperty(type=bpy.types.Material)
    # the slot's link before: 'DATA' (the mesh's material) or 'OBJECT' ('material' is the
    # object's own); empty in entries from before links were recorded
    link: StringProperty(name="Link")


class SfumatoTarget(bpy.types.PropertyGroup):
    """An object a result was applied to, with what its material slots held before (kept
    referenced here so that the old materials survive saving and can be restored)."""

    object: PointerProperty(type=bpy.types.Object)
    material: PointerProperty(type=bpy.types.Material)
    previous: CollectionProperty(type=SfumatoMaterialRef)
    previous_uv: StringProperty(name="Active UV Map Before")  # texture: for Restore
    previous_render_uv: StringProperty(name="Render UV Map Before")
    node: StringProperty(name="Texture Node")  # inpaint: the node whose image it replaced


class SfumatoResult(bpy.types.PropertyGroup):
    """One entry of the history; ``name`` is the label shown in the list."""

    kind: EnumProperty(name="Kind", items=KINDS)
    image: PointerProperty(type=bpy.types.Image)
    previous_image: PointerProperty(type=bpy.types.Image)  # inpaint: the texture before
    job_id: StringProperty(name="Job")
    prompt: StringProperty(name="Prompt")
    seed: StringProperty(name="Seed")  # decimal: a uint32 does not fit an IntProperty
    model: StringProperty(name="Model")
    uv_map: StringProperty(name="UV Map")
    camera: PointerProperty(type=bpy.types.Object)
    distance: FloatProperty(name="Distance")
    targets: CollectionProperty(type=SfumatoTarget)
    # world: the world made for this result (a copy of the scene's) and the one it replaced
    world: PointerProperty(type=bpy.types.World)
    previous_world: PointerProperty(type=bpy.types.World)
    # backdrop: what the camera showed before (previous_image: an earlier Sfumato backdrop)
    previous_distance: FloatProperty(name="Previous Distance")
    show_background: BoolProperty(name="Background Images Shown Before")
    had_background_slot: BoolProperty(name="Had an Empty Background Slot")


class SfumatoRuntime(bpy.types.PropertyGroup):
    """``WindowManager.sfumato``: the connection and the running job (never saved)."""

    # connection (written by the bridge)
    connection: EnumProperty(name="Connection", items=CONNECTION_STATES)
    server_version: StringProperty(name="Server")
    notice: StringProperty(name="Notice")
    system: StringProperty(name="Server Machine", description="Its device, torch, models")
    system_warnings: StringProperty(
        name="Server Warnings", description="One per line, each with its fix"
    )
    error: StringProperty(name="Error", description="The last problem, with its fix")
    models: CollectionProperty(type=SfumatoModel)
    loras: CollectionProperty(type=SfumatoLora)
    default_model: StringProperty(name="Default Model")
    # the server's limits from its welcome (0: not connected yet)
    max_steps: IntProperty(name="Most Steps")
    max_image_side: IntProperty(name="Largest Side")

    # the running job (written by the bridge)
    busy: BoolProperty(name="Busy")
    job_id: StringProperty(name="Job")
    job_kind: EnumProperty(name="Kind", items=KINDS)
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(name="Status")
    preview: PointerProperty(type=bpy.types.Image)


class SfumatoSettings(bpy.types.PropertyGroup):
    """``Scene.sfumato``: the settings of the next job and the history (saved in the file)."""

    # what to make
    model: StringProperty(
        name="Model",
        description="Base model, by the server's registry name; empty: the server's default",
    )
    prompt: StringProperty(name="Prompt", description="What to make")
    negative: StringProperty(name="Negative", description="What to avoid")
    random_seed: BoolProperty(
        name="Random Seed", default=True, description="Let the server pick a seed (it reports it)"
    )
    # A string: the protocol's seeds are 0 … 2**32 − 1, Blender's IntProperty is 32-bit signed
    # (half of them would not fit). jobs.parse_seed checks it when a job is sent.
    seed: StringProperty(
        name="Seed",
        default="0",
        description="A whole number from 0 to 4294967295; the same seed makes the same image",
    )
    # No hard maximum: the server's own (welcome.limits) is checked when a job is sent.
    steps: IntProperty(name="Steps", default=20, min=1, max=100_000, soft_max=150)
    guidance: FloatProperty(name="Guidance", default=7.0, min=0.0, max=50.0)
    strength: FloatProperty(
        name="Strength",
        default=0.9,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
        description="Inpaint: how much of the old region may change",
    )
    control_strength: FloatProperty(
        name="Control",
        default=1.0,
        min=0.0,
        max=2.0,
        description="How strongly depth and normals from the scene steer the image",
    )
    resolution: IntProperty(
        name="Resolution",
        default=512,
        min=64,
        max=65_536,
        soft_max=4096,
        step=64,
        description="Longest side of the generated image in pixels (camera jobs follow the "
        "render's aspect); at most the server's largest side",
    )
    mask_image: PointerProperty(
        name="Mask",
        type=bpy.types.Image,
        description="Painted mask for Inpaint Texture (white = regenerate); empty: the selected faces",
    )
    mask_grow: IntProperty(
        name="Grow", default=2, min=0, max=64, description="Widen the face mask by this many pixels"
    )

    history: CollectionProperty(type=SfumatoResult)
    history_index: IntProperty(name="Result", default=0)
    texturing: PointerProperty(type=texprops.SfumatoTexturing)  # Texture Object's settings
    live: PointerProperty(type=liveprops.SfumatoLiveSettings)  # the live viewport's choices


CLASSES = (
    *texprops.CLASSES,
    *liveprops.CLASSES,
    SfumatoModel,
    SfumatoLora,
    SfumatoMaterialRef,
    SfumatoTarget,
    SfumatoResult,
    SfumatoRuntime,
    SfumatoSettings,
)


def register() -> None:
    bpy.types.Scene.sfumato = PointerProperty(type=SfumatoSettings)
    bpy.types.WindowManager.sfumato = PointerProperty(type=SfumatoRuntime)


def unregister() -> None:
    del bpy.types.WindowManager.sfumato
    del bpy.types.Scene.sfumato


def runtime(context: Any = None) -> Any:
    """The session's state: ``WindowManager.sfumato`` of the (only) window manager."""
    wm = getattr(context, "window_manager", None) or bpy.context.window_manager
    if wm is None:  # no window manager yet (a file loading): the data's first one
        wm = bpy.data.window_managers[0]
    return wm.sfumato
