"""The live viewport's state: its choices (``Scene.sfumato.live``, saved with the file) and
whether it runs (``WindowManager.sfumato_live``, never saved: a file never reopens with Live
on, sending jobs nobody asked for)."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

MODES = (
    ("TEXTURE", "Texture", "Project each live image onto the selected meshes from the camera"),
    ("BACKDROP", "Backdrop", "Show each live image as the camera's background"),
)


class SfumatoLiveSettings(bpy.types.PropertyGroup):
    """``Scene.sfumato.live``: what a live job makes; the prompt, model and the rest are the
    Generate panel's."""

    mode: EnumProperty(name="Live Shows", items=MODES, default="TEXTURE")
    resolution: IntProperty(
        name="Preview Size",
        default=256,
        min=64,
        max=2048,
        step=64,
        description="Longest side of a live image in pixels: small keeps it quick",
    )
    steps: IntProperty(
        name="Live Steps",
        default=2,
        min=1,
        max=50,
        description="Denoising steps of a live job (turbo models need 1-4)",
    )


class SfumatoLiveState(bpy.types.PropertyGroup):
    """``WindowManager.sfumato_live``: whether Live runs now and how it is doing."""

    on: BoolProperty(name="Live")
    status: StringProperty(name="Live Status")
    error: StringProperty(
        name="Live Error", description="Why the last live image failed, and the fix"
    )
    sent: IntProperty(name="Live Jobs Sent")
    shown: IntProperty(name="Live Images Shown")


CLASSES = (SfumatoLiveSettings, SfumatoLiveState)


def register() -> None:
    bpy.types.WindowManager.sfumato_live = bpy.props.PointerProperty(type=SfumatoLiveState)


def unregister() -> None:
    del bpy.types.WindowManager.sfumato_live


def state() -> object:
    wm = bpy.context.window_manager or bpy.data.window_managers[0]
    return wm.sfumato_live
