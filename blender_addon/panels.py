"""The "Sfumato" tab of the 3D viewport's sidebar. Panels only draw ``Scene.sfumato`` (the
file's settings and history) and ``WindowManager.sfumato`` (the connection and the running
job); they change nothing (state changes go through operators and the bridge)."""

import bpy

from . import jobs, prefs, props

ACTIONS = (
    ("sfumato.texture_from_view", "UV"),
    ("sfumato.camera_backdrop", "IMAGE_BACKGROUND"),
    ("sfumato.world_background", "WORLD"),
    ("sfumato.seamless_material", "MATERIAL"),
    ("sfumato.inpaint_texture", "BRUSH_DATA"),
)


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Sfumato"


class SFUMATO_PT_main(_Panel, bpy.types.Panel):
    bl_label = "Sfumato"
    bl_idname = "SFUMATO_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout, settings = self.layout, props.runtime(context)
        row = layout.row(align=True)
        if settings.connection == "CONNECTED":
            row.label(text=f"Connected · server {settings.server_version}", icon="LINKED")
        elif settings.connection == "CONNECTING":
            row.label(text="Connecting …", icon="TIME")
        else:
            row.label(text="Not connected", icon="UNLINKED")
        row.operator("sfumato.connect", text="", icon="FILE_REFRESH")
        if settings.connection != "CONNECTED":
            box = layout.box()
            box.label(text=f"Server: {prefs.get(context).url}")
            box.label(text="No server? In a terminal run:")
            box.label(text="    sfumato serve")
            box.label(text="then press Connect (URL and token: add-on preferences).")
        if settings.connection == "CONNECTED" and settings.system:
            _wrapped(layout, settings.system, "INFO")
            for warning in filter(None, settings.system_warnings.split("\n")):
                _wrapped(layout.box(), warning, "ERROR")
        if settings.notice:
            _wrapped(layout.box(), settings.notice, "INFO")
        if settings.error:
            _wrapped(layout.box(), settings.error, "ERROR")


class SFUMATO_PT_settings(_Panel, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "SFUMATO_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout, settings, rt = self.layout, context.scene.sfumato, props.runtime(context)
        layout.use_property_split = True
        layout.prop_search(settings, "model", rt, "models", icon="NODE_COMPOSITING")
        layout.prop(settings, "prompt")
        layout.prop(settings, "negative")
        row = layout.row(align=True, heading="Seed")
        row.prop(settings, "random_seed", text="Random")
        sub = row.row(align=True)
        sub.enabled = not settings.random_seed
        sub.alert = sub.enabled and not _is_seed(settings.seed)  # red until it is one
        sub.prop(settings, "seed", text="")
        row = layout.row()
        row.alert = 0 < rt.max_steps < settings.steps  # over the server's limit: red
        row.prop(settings, "steps")
        layout.prop(settings, "guidance")
        layout.prop(settings, "strength")
        layout.prop(settings, "control_strength")
        row = layout.row()
        row.alert = 0 < rt.max_image_side < settings.resolution
        row.prop(settings, "resolution")
        if rt.max_steps:
            layout.label(text=f"Server: at most {rt.max_steps} steps, {rt.max_image_side} px")
        loras = fitting_loras(rt, settings.model)
        if loras:
            col = layout.column(heading="LoRAs")
            for lora in loras:
                row = col.row(align=True)
                row.enabled = lora.approved  # the server refuses unapproved ones
                row.prop(
                    lora, "use", text=lora.name if lora.approved else f"{lora.name} ({lora.note})"
                )
                row.prop(lora, "weight", text="")


class SFUMATO_PT_actions(_Panel, bpy.types.Panel):
    bl_label = "Actions"
    bl_parent_id = "SFUMATO_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout, scene_settings = self.layout, context.scene.sfumato
        settings = props.runtime(context)
        col = layout.column(align=True)
        for idname, icon in ACTIONS:
            col.operator(idname, icon=icon)
        box = layout.box()
        box.label(text="Inpaint mask (empty: the selected faces)")
        box.template_ID(scene_settings, "mask_image", open="image.open")
        box.prop(scene_settings, "mask_grow")
        if settings.busy or settings.status:
            box = layout.box()
            text = settings.status or "working"
            box.progress(factor=settings.progress, type="BAR", text=text)
            preview = settings.preview
            if settings.busy and preview is not None and preview.preview is not None:
                box.template_icon(icon_value=preview.preview.icon_id, scale=8.0)
            if settings.busy:
                box.operator("sfumato.cancel", icon="CANCEL")


class SFUMATO_UL_history(bpy.types.UIList):
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
        image = getattr(item, "image", None)
        row = layout.row(align=True)
        if image is not None and image.preview is not None:
            row.label(text=getattr(item, "name", ""), icon_value=image.preview.icon_id)
        else:
            row.label(text=getattr(item, "name", ""), icon="IMAGE_DATA")
        row.label(text=f"{getattr(item, 'kind', '').title()} · seed {getattr(item, 'seed', 0)}")


class SFUMATO_PT_history(_Panel, bpy.types.Panel):
    bl_label = "History"
    bl_parent_id = "SFUMATO_PT_main"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    def draw(self, context: bpy.types.Context) -> None:
        layout, settings = self.layout, context.scene.sfumato
        layout.template_list(
            "SFUMATO_UL_history", "", settings, "history", settings, "history_index", rows=3
        )
        row = layout.row(align=True)
        row.operator("sfumato.apply_result", icon="CHECKMARK")
        row.operator("sfumato.restore", icon="LOOP_BACK")
        if 0 <= settings.history_index < len(settings.history):
            entry = settings.history[settings.history_index]
            col = layout.column(align=True)
            col.label(text=f"Prompt: {entry.prompt or '—'}")
            col.label(text=f"Model: {entry.model} · seed {entry.seed} · job {entry.job_id}")


def fitting_loras(runtime: object, model: str) -> list:
    """The LoRAs of the chosen model's family (the server's default when none is chosen):
    one made for another family cannot apply, so it is not listed."""
    name = model or getattr(runtime, "default_model", "")
    family = next((m.family for m in runtime.models if m.name == name), None)  # type: ignore[attr-defined]
    return [lora for lora in runtime.loras if family is not None and lora.family == family]  # type: ignore[attr-defined]


def _is_seed(text: str) -> bool:
    try:
        jobs.parse_seed(text)
    except jobs.UserError:
        return False
    return True


def _wrapped(layout: bpy.types.UILayout, text: str, icon: str, width: int = 48) -> None:
    """Long messages (errors with their fix) as several labels: a label does not wrap."""
    import textwrap

    for n, line in enumerate(textwrap.wrap(text, width) or [""]):
        layout.label(text=line, icon=icon if n == 0 else "BLANK1")


CLASSES = (
    SFUMATO_UL_history,
    SFUMATO_PT_main,
    SFUMATO_PT_settings,
    SFUMATO_PT_actions,
    SFUMATO_PT_history,
)
