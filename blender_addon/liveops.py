"""Live's toggle and its panel (the work is in ``live``)."""

import bpy

from sfumato.client import ConnectionFailed
from sfumato.hostsession import HostError

from . import jobs, live, liveprops
from .panels import _Panel, _wrapped


class SFUMATO_OT_live(bpy.types.Operator):
    """Live on: every camera move or scene change makes a quick new image from the camera,
    shown in place. Live off: cancel what runs and put back what Live replaced"""

    bl_idname = "sfumato.live"
    bl_label = "Live"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: bpy.types.Context) -> set[str]:
        state = liveprops.state()
        if state.on:
            cancelled = live.stop()
            self.report({"INFO"}, f"Sfumato: live off ({len(cancelled)} job(s) cancelled)")
            return {"FINISHED"}
        try:
            done = live.start(context)
        except (jobs.UserError, HostError, ConnectionFailed) as exc:
            state.error = str(exc)
            self.report({"ERROR"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Sfumato: {done}")
        return {"FINISHED"}


class SFUMATO_PT_live(_Panel, bpy.types.Panel):
    bl_label = "Live"
    bl_parent_id = "SFUMATO_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout, settings, state = self.layout, context.scene.sfumato.live, liveprops.state()
        row = layout.row(align=True)
        row.operator("sfumato.live", text="Live", icon="PLAY" if not state.on else "PAUSE",
                     depress=state.on)  # fmt: skip
        row.prop(settings, "mode", expand=True)
        col = layout.column(align=True)
        col.prop(settings, "resolution")
        col.prop(settings, "steps")
        if state.on:
            layout.label(text=f"{state.status} · {state.sent} sent · {state.shown} shown")
        if state.error:
            _wrapped(layout.box(), state.error, "ERROR")


CLASSES = (SFUMATO_OT_live, SFUMATO_PT_live)
