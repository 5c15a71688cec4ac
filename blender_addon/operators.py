"""Operators: the five actions, connect, cancel and the history. Thin: the work is in
``jobs`` (what to send, how to apply) and ``bridge`` (the client and the timer).

Every action submits its job and returns at once; the timer applies the result. With
``wait=True`` it blocks until the result is applied instead — for scripts and ``blender -b``,
where timers never run.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from sfumato.client import ConnectionFailed, JobFailed, JobWasCancelled
from sfumato.hostsession import HostError, Offer

from . import bridge, jobs, prefs, props, results
from .pending import Pending

# What an action can run into, each with a message for the user: their scene, what the server
# offers (HostError: refused before sending), the server, the job, or the pass render (bpy
# raises RuntimeError, a vanished EXR OSError).
FAILURES = (
    jobs.UserError, HostError, ConnectionFailed, JobFailed, TimeoutError, RuntimeError, OSError,
)  # fmt: skip


class _JobOperator(bpy.types.Operator):
    """Shared execute(): connect, prepare, then submit (or run to completion with ``wait``)."""

    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)
    prepare: ClassVar[Callable[[Any, Any, Offer], Pending]]

    wait: BoolProperty(
        name="Wait",
        description="Block until the result is applied (scripts and background runs)",
        default=False,
        options={"SKIP_SAVE"},
    )
    timeout: FloatProperty(name="Timeout", default=600.0, min=1.0, options={"SKIP_SAVE", "HIDDEN"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not props.runtime(context).busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings, link, preferences = context.scene.sfumato, bridge.get(), prefs.get(context)
        try:
            offer = link.ensure_connected(preferences.url, preferences.token)
            pending = self.prepare_pending(context, settings, offer)
            if not self.wait:
                link.submit(pending)
                self.report({"INFO"}, f"Sfumato: job {pending.job.id} sent")
                return {"FINISHED"}
            link.run(pending, self.timeout)
        except JobWasCancelled as exc:
            self.report({"WARNING"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        except FAILURES as exc:
            return self._fail(context, str(exc))
        if pending.failure:
            return self._fail(context, pending.failure)
        self.report({"INFO"}, f"Sfumato: {pending.message}")
        return {"FINISHED"}

    def prepare_pending(self, context: bpy.types.Context, settings: Any, offer: Offer) -> Pending:
        """The job to send; an action with options of its own passes them on here."""
        return type(self).prepare(context, settings, offer)

    def _fail(self, context: bpy.types.Context, message: str) -> set[str]:
        props.runtime(context).error = message
        self.report({"ERROR"}, f"Sfumato: {message}")
        return {"CANCELLED"}


class SFUMATO_OT_texture_from_view(_JobOperator):
    """Texture the selected meshes from the active camera, following the scene's depth and
    normals"""

    bl_idname = "sfumato.texture_from_view"
    bl_label = "Texture from View"
    prepare = staticmethod(jobs.prepare_texture)


class SFUMATO_OT_world_background(_JobOperator):
    """Make a 360° panorama (2:1, wrapping left to right) the world's background"""

    bl_idname = "sfumato.world_background"
    bl_label = "World Background"
    prepare = staticmethod(jobs.prepare_world)


class SFUMATO_OT_camera_backdrop(_JobOperator):
    """Make a picture for the camera frame that fits the scene's depth and place it behind
    the objects"""

    bl_idname = "sfumato.camera_backdrop"
    bl_label = "Camera Backdrop"
    prepare = staticmethod(jobs.prepare_backdrop)


class SFUMATO_OT_inpaint_texture(_JobOperator):
    """Regenerate the selected faces' part (or a painted mask's) of the active object's
    texture; the rest stays as it is"""

    bl_idname = "sfumato.inpaint_texture"
    bl_label = "Inpaint Texture"
    prepare = staticmethod(jobs.prepare_inpaint)


class SFUMATO_OT_seamless_material(_JobOperator):
    """Make a tileable texture and put it in a material on the selected meshes"""

    bl_idname = "sfumato.seamless_material"
    bl_label = "Seamless Material"
    prepare = staticmethod(jobs.prepare_seamless)


class SFUMATO_OT_connect(bpy.types.Operator):
    """Connect to the Sfumato server in the add-on's preferences"""

    bl_idname = "sfumato.connect"
    bl_label = "Connect"

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        preferences = prefs.get(context)
        if not self.wait:
            bridge.get().connect_async(preferences.url, preferences.token)
            return {"FINISHED"}
        try:
            offer = bridge.get().ensure_connected(preferences.url, preferences.token)
        except ConnectionFailed as exc:
            self.report({"ERROR"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Sfumato: connected to server {offer.server}")
        return {"FINISHED"}


class SFUMATO_OT_cancel(bpy.types.Operator):
    """Stop the running job (it ends within one denoising step)"""

    bl_idname = "sfumato.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return props.runtime(context).busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = props.runtime(context)
        try:
            bridge.get().cancel(settings.job_id)
        except ConnectionFailed as exc:
            settings.busy, settings.error = False, str(exc)
            self.report({"ERROR"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        settings.status = "cancelling"
        return {"FINISHED"}


class _HistoryOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender reads a set)
    index: IntProperty(name="Index", default=-1, options={"SKIP_SAVE"})

    def entry(self, context: bpy.types.Context) -> Any:
        settings = context.scene.sfumato
        index = settings.history_index if self.index < 0 else self.index
        return settings.history[index] if 0 <= index < len(settings.history) else None

    def execute(self, context: bpy.types.Context) -> set[str]:
        entry = self.entry(context)
        if entry is None:
            self.report({"ERROR"}, "Sfumato: pick a result in the history first")
            return {"CANCELLED"}
        try:
            done = self.act(context, entry)
        except (LookupError, ValueError, ReferenceError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Sfumato: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Sfumato: {done}")
        return {"FINISHED"}

    def act(self, context: bpy.types.Context, entry: Any) -> str:
        """Do it; return what was done (the report says it, so nothing passes silently)."""
        raise NotImplementedError


class SFUMATO_OT_apply_result(_HistoryOperator):
    """Apply this result again, where it was first applied"""

    bl_idname = "sfumato.apply_result"
    bl_label = "Apply Again"

    def act(self, context: bpy.types.Context, entry: Any) -> str:
        return results.reapply(context.scene, entry)


class SFUMATO_OT_restore(_HistoryOperator):
    """Put back what was there before this result: the materials and UV maps (or the
    texture) of its objects, the world, the camera's backdrop"""

    bl_idname = "sfumato.restore"
    bl_label = "Restore Previous"

    def act(self, context: bpy.types.Context, entry: Any) -> str:
        return results.restore(context.scene, entry)


CLASSES = (
    SFUMATO_OT_texture_from_view,
    SFUMATO_OT_world_background,
    SFUMATO_OT_camera_backdrop,
    SFUMATO_OT_inpaint_texture,
    SFUMATO_OT_seamless_material,
    SFUMATO_OT_connect,
    SFUMATO_OT_cancel,
    SFUMATO_OT_apply_result,
    SFUMATO_OT_restore,
)
