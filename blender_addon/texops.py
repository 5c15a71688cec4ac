"""Operators of whole-object texturing: place texture cameras, order the list, and Texture
Object itself (a job action like the others: ``operators._JobOperator``)."""

from __future__ import annotations

from typing import Any, ClassVar

import bpy
from bpy.props import BoolProperty, EnumProperty

from sfumato.protocol import Paint

from . import operators, scene, texcams, texjob


class SFUMATO_OT_add_texture_cameras(bpy.types.Operator):
    """Place cameras around the selected meshes to texture them from (the placement in the
    panel); the cameras Sfumato placed before are replaced"""

    bl_idname = "sfumato.add_texture_cameras"
    bl_label = "Add Texture Cameras"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    replace: BoolProperty(name="Replace", default=True, options={"SKIP_SAVE"},
                          description="Delete the texture cameras placed before")  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        meshes = [
            o
            for o in context.selected_objects
            if o.type == "MESH" and not o.get(scene.BACKDROP_TAG)
        ]
        if not meshes:
            self.report({"ERROR"}, "Sfumato: select the meshes to place texture cameras around")
            return {"CANCELLED"}
        t = context.scene.sfumato.texturing
        try:
            placed = texcams.place(
                context, meshes, t.strategy, count=t.count, elevation=t.elevation,
                target=t.coverage, budget=t.budget, replace=self.replace,
                view_side=context.scene.sfumato.resolution,
            )  # fmt: skip
        except ValueError as exc:
            self.report({"ERROR"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        said = f"Sfumato: {len(placed.cameras)} texture cameras placed"
        if placed.coverage:
            said += f", seeing about {placed.coverage[-1] * 100:.1f} % of the surface"
        self.report({"INFO"}, said)
        return {"FINISHED"}


class SFUMATO_OT_texture_camera_move(bpy.types.Operator):
    """Move the chosen texture camera up or down the order the views are painted in"""

    bl_idname = "sfumato.texture_camera_move"
    bl_label = "Move Texture Camera"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    direction: EnumProperty(items=(("UP", "Up", ""), ("DOWN", "Down", "")), options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        t = context.scene.sfumato.texturing
        index = t.camera_index
        other = index - 1 if self.direction == "UP" else index + 1
        if not (0 <= index < len(t.cameras) and 0 <= other < len(t.cameras)):
            return {"CANCELLED"}
        t.cameras.move(index, other)
        t.camera_index = other
        return {"FINISHED"}


class SFUMATO_OT_texture_camera_add(bpy.types.Operator):
    """Add the active camera to the end of the texture cameras' list"""

    bl_idname = "sfumato.texture_camera_add"
    bl_label = "Add Active Camera"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> set[str]:
        cam = context.active_object
        if cam is None or cam.type != "CAMERA":
            self.report({"ERROR"}, "Sfumato: make a camera the active object to add it")
            return {"CANCELLED"}
        t = context.scene.sfumato.texturing
        if any(i.camera == cam for i in t.cameras):
            self.report({"INFO"}, f"Sfumato: {cam.name} is in the list already")
            return {"CANCELLED"}
        t.cameras.add().camera = cam
        t.camera_index = len(t.cameras) - 1
        return {"FINISHED"}


class SFUMATO_OT_texture_camera_remove(bpy.types.Operator):
    """Take the chosen camera out of the list (a camera Sfumato placed is deleted too)"""

    bl_idname = "sfumato.texture_camera_remove"
    bl_label = "Remove Texture Camera"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> set[str]:
        t = context.scene.sfumato.texturing
        if not 0 <= t.camera_index < len(t.cameras):
            return {"CANCELLED"}
        cam = t.cameras[t.camera_index].camera
        t.cameras.remove(t.camera_index)
        t.camera_index = max(0, t.camera_index - 1)
        if cam is not None and cam.get(texcams.TAG):
            bpy.data.objects.remove(cam)
        return {"FINISHED"}


class SFUMATO_OT_texture_object(operators._JobOperator):
    """Texture the active mesh all round: paint it from every texture camera in order, each
    view agreeing with the ones before, baked into its UV map"""

    bl_idname = "sfumato.texture_object"
    bl_label = "Texture Object"
    prepare: ClassVar[Any] = staticmethod(texjob.prepare_texture_object)

    paint: EnumProperty(
        name="Paint",
        items=(
            ("GENERATE", "Generate", "The model paints each view"),
            (
                "POSITION",
                "Position",
                "Diagnostic: each view shows the world positions it "
                "sees, so the baked texture must equal the position map",
            ),
        ),
        default="GENERATE",
        options={"SKIP_SAVE", "HIDDEN"},
    )

    def prepare_pending(self, context: bpy.types.Context, settings: Any, offer: Any) -> Any:
        return texjob.prepare_texture_object(context, settings, offer, Paint(self.paint.lower()))


CLASSES = (
    SFUMATO_OT_add_texture_cameras,
    SFUMATO_OT_texture_camera_move,
    SFUMATO_OT_texture_camera_add,
    SFUMATO_OT_texture_camera_remove,
    SFUMATO_OT_texture_object,
)
