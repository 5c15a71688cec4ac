"""The "Texture Object" panel: placement of texture cameras, their order (a list the user
reorders), the texture's size and the action. Draws only; changes go through operators."""

import bpy

from . import panels


class SFUMATO_UL_texture_cameras(bpy.types.UIList):
    def draw_item(  # Blender's signature
        self,
        context: bpy.types.Context,
        layout: bpy.types.UILayout,
        data: object,
        item: object,
        icon: int,
        active_data: object,
        active_property: str,
        index: int = 0,
    ) -> None:
        cam = getattr(item, "camera", None)
        name = cam.name if cam is not None else "(deleted: skipped)"
        layout.label(text=f"{index + 1}. {name}", icon="CAMERA_DATA")


class SFUMATO_PT_texture_object(panels._Panel, bpy.types.Panel):
    bl_label = "Texture Object"
    bl_parent_id = "SFUMATO_PT_main"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context: bpy.types.Context) -> None:
        layout, t = self.layout, context.scene.sfumato.texturing
        layout.use_property_split = True
        layout.prop(t, "strategy")
        if t.strategy == "GREEDY":
            layout.prop(t, "coverage")
            layout.prop(t, "budget")
        else:
            layout.prop(t, "count")
            if t.strategy == "ORBIT":
                layout.prop(t, "elevation")
        layout.operator("sfumato.add_texture_cameras", icon="OUTLINER_OB_CAMERA")
        row = layout.row()
        row.template_list("SFUMATO_UL_texture_cameras", "", t, "cameras", t, "camera_index", rows=4)
        col = row.column(align=True)
        col.operator("sfumato.texture_camera_add", text="", icon="ADD")
        col.operator("sfumato.texture_camera_remove", text="", icon="REMOVE")
        col.separator()
        col.operator("sfumato.texture_camera_move", text="", icon="TRIA_UP").direction = "UP"
        col.operator("sfumato.texture_camera_move", text="", icon="TRIA_DOWN").direction = "DOWN"
        layout.prop(t, "texture_size")
        layout.operator("sfumato.texture_object", icon="TEXTURE")
        if t.report:
            layout.label(text=t.report, icon="INFO")


CLASSES = (SFUMATO_UL_texture_cameras, SFUMATO_PT_texture_object)
