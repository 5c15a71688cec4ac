""" "Start a local server" in the add-on preferences (issue 15, item 4): the shared launcher
(``sfumato.hostlaunch``) started and stopped by two operators, its state, loading progress
and last log lines drawn in the preferences, redrawn by a ``bpy.app.timers`` poll that never
blocks. Once the server is ready the poll connects the add-on to it; the server this add-on
started is stopped when the add-on is disabled (``unregister``) or Blender quits (atexit, in
the launcher). A server that was already running is reused, never stopped.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import bpy

from sfumato.hostlaunch import LocalServer
from sfumato.hostserver import ServerState, ServerStatus

from . import bridge, prefs

POLL_INTERVAL = 0.25  # seconds between polls while the server starts, loads or stops
READY_INTERVAL = 1.0  # … and while it runs (to notice it exiting)
LOG_SHOWN = 6  # log lines drawn in the preferences
ICONS = {
    ServerState.READY: "CHECKMARK", ServerState.REUSED: "LINKED", ServerState.LOADING: "TIME",
    ServerState.STARTING: "TIME", ServerState.CHECKING: "VIEWZOOM", ServerState.STOPPING: "TIME",
    ServerState.STOPPED: "PAUSE", ServerState.IDLE: "BLANK1",
}  # fmt: skip


class Launcher:
    """The add-on's one launcher and what its poll last saw (so it connects once)."""

    def __init__(self) -> None:
        self.server = LocalServer(Path(__file__).resolve().parent, "blender")
        self.connected_to: int | None = None  # the run (pid, or 0 for a reuse) connected
        self.url = ""
        self.token = ""

    def start(self, url: str, token: str, environment: str, args: list[str]) -> ServerStatus:
        self.url, self.token, self.connected_to = url, token, None
        return self.server.start(url, token, environment, args)

    def poll(self) -> ServerStatus:
        """One poll (the timer's, or a test's): connect once the server is usable."""
        status = self.server.status(LOG_SHOWN)
        run = status.pid or 0
        if status.state.usable and self.connected_to != run:
            self.connected_to = run
            link = bridge.get()
            if not (link.connected and link.link.same_place(self.url, self.token or None)):
                link.connect_async(self.url, self.token)
        return status


LAUNCHER: Launcher | None = None


def get() -> Launcher:
    if LAUNCHER is None:
        raise RuntimeError("the Sfumato add-on is not registered")
    return LAUNCHER


def poll() -> float | None:
    """The timer: poll, redraw the preferences; unregistered (None) once nothing moves."""
    if LAUNCHER is None:
        return None
    status = LAUNCHER.poll()
    _redraw()
    if not status.state.alive:
        return None  # ended: the last state stays drawn; Start registers the timer again
    return READY_INTERVAL if status.state is ServerState.READY else POLL_INTERVAL


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type in ("PREFERENCES", "VIEW_3D"):
                area.tag_redraw()


def _watch() -> None:
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL, persistent=True)


class SFUMATO_OT_start_server(bpy.types.Operator):
    """Start `sfumato serve` from the Sfumato environment on the server URL's port (or use
    the Sfumato server already running there), then connect to it"""

    bl_idname = "sfumato.start_server"
    bl_label = "Start Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        p = prefs.get(context)
        try:
            args = shlex.split(p.server_args)
        except ValueError as exc:
            return self._fail(f"the server arguments cannot be read ({exc}); check the quotes")
        status = get().start(p.url, p.token, p.server_env, args)
        if status.state in (ServerState.NOT_FOUND, ServerState.FAILED):
            return self._fail(status.message)
        _watch()
        self.report({"INFO"}, f"Sfumato: {status.message}")
        return {"FINISHED"}

    def _fail(self, message: str) -> set[str]:
        self.report({"ERROR"}, f"Sfumato: {message}")
        return {"CANCELLED"}


class SFUMATO_OT_stop_server(bpy.types.Operator):
    """Stop the server this add-on started (a server it found running is left alone)"""

    bl_idname = "sfumato.stop_server"
    bl_label = "Stop Server"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        status = get().server.status(0) if LAUNCHER is not None else None
        return status is not None and status.owned and status.state.alive

    def execute(self, context: bpy.types.Context) -> set[str]:
        launcher = get()
        bridge.get().close()  # our connection goes first: no "lost the server" for a stop
        launcher.server.stop()
        _watch()
        return {"FINISHED"}


def draw(layout: Any, p: Any) -> None:
    """The "Local server" box of the preferences."""
    box = layout.box()
    box.label(text="Local server", icon="CONSOLE")
    box.prop(p, "server_env")
    box.prop(p, "server_args")
    status = LAUNCHER.server.status(LOG_SHOWN) if LAUNCHER is not None else None
    row = box.row(align=True)
    alive = status is not None and status.state.alive
    row.enabled = not alive
    row.operator("sfumato.start_server", icon="PLAY")
    sub = box.row(align=True)
    sub.operator("sfumato.stop_server", icon="CANCEL")
    if status is None or status.state is ServerState.IDLE:
        box.label(text="Empty path: a sfumato-env folder beside the add-on, $SFUMATO_ENV,")
        box.label(text="the user data folder's sfumato-env, or `sfumato` on PATH.")
        return
    if status.state is ServerState.LOADING:
        box.progress(
            factor=status.percent / 100, type="BAR", text=f"loading models {status.percent} %"
        )
    icon = ICONS.get(status.state, "ERROR")
    _wrapped(box, status.message, icon)
    if status.lines:
        col = box.column(align=True)
        col.scale_y = 0.8
        for line in status.lines:
            col.label(text=line[-120:])


def _wrapped(layout: Any, text: str, icon: str, width: int = 90) -> None:
    import textwrap

    for n, line in enumerate(textwrap.wrap(text, width) or [""]):
        layout.label(text=line, icon=icon if n == 0 else "BLANK1")


def start() -> None:
    global LAUNCHER
    LAUNCHER = Launcher()


def stop() -> None:
    """The add-on is disabled: the server it started goes with it."""
    global LAUNCHER
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)
    if LAUNCHER is not None:
        LAUNCHER.server.close()
    LAUNCHER = None


CLASSES = (SFUMATO_OT_start_server, SFUMATO_OT_stop_server)
