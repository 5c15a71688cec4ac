""" "Start a local server" in the add-on preferences (issue 15, item 4), end to end: a wrong
environment path gives the fix; this checkout's server environment (``SERVER_ENV``, from
``$SFUMATO_SERVER_ENV``) starts a real ``sfumato serve`` through the operator, the timer's
poll shows it loading and connects once ready, one tiny job runs through it, Stop ends the
process; a server started again goes with the add-on when it is disabled. Headless bpy fires
no timers: the test calls the add-on's poll (and the bridge's tick) itself."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import pytest

from .conftest import ADDON, SERVER_ENV, runtime, submodule


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class TextLayout:
    """Stands in for the preferences' UILayout (none headless): records each label's and
    progress bar's text, and checks every property and operator drawn exists."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            if name == "prop":
                assert args[1] in args[0].bl_rna.properties, args[1]
            if name == "operator":
                category, op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, category), op), args[0]
            if name in ("label", "progress"):
                self.texts.append(kwargs.get("text", ""))
            return TextLayout(self.texts)

        return method


DRAWN: list[str] = []  # every text the preferences drew while the test pumped


def pump(until: Callable[[Any], bool], timeout: float = 120.0) -> list[Any]:
    """Call the timers Blender would fire until ``until()`` holds, drawing the preferences
    each time; every status seen."""
    localserver, seen = submodule("localserver"), []
    prefs = bpy.context.preferences.addons[ADDON].preferences
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        localserver.poll()
        submodule("bridge").tick()
        status = localserver.get().server.status(20)
        if not seen or (seen[-1].state, seen[-1].percent) != (status.state, status.percent):
            seen.append(status)
            localserver.draw(TextLayout(DRAWN), prefs)
        if until(status):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout} s; seen: {[s.state for s in seen]}: {seen[-1]}")


def test_start_use_and_stop_a_local_server_from_the_preferences(
    addon: ModuleType, tmp_path: Path
) -> None:
    from sfumato.hostserver import ServerState

    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.url = f"ws://127.0.0.1:{free_port()}"
    prefs.server_env = str(tmp_path / "no-such-env")
    with pytest.raises(RuntimeError, match="does not exist"):  # reported as an error
        bpy.ops.sfumato.start_server()
    wrong = submodule("localserver").get().server.status()
    assert wrong.state is ServerState.NOT_FOUND
    assert "does not exist" in wrong.message and "bin/sfumato" in wrong.message

    prefs.server_env = str(SERVER_ENV)
    prefs.server_args = f"--cache '{tmp_path / 'cache'}' --results '{tmp_path / 'results'}'"
    assert bpy.ops.sfumato.start_server() == {"FINISHED"}
    seen = pump(lambda s: runtime().connection == "CONNECTED" or not s.state.alive)
    ready = seen[-1]
    assert ready.state is ServerState.READY and ready.owned, ready
    loading = [s.percent for s in seen if s.state is ServerState.LOADING]
    assert loading and loading == sorted(loading) and 0 < loading[-1] < 100, seen
    assert any("sfumato.worker: ready: model tiny-sd" in line for line in ready.lines)
    assert submodule("bridge").get().client.url == prefs.url  # connected to the one it started
    assert any(t.startswith("loading models ") and t.endswith(" %") for t in DRAWN), DRAWN
    assert any(t.startswith("ready: model tiny-sd") for t in DRAWN)
    assert any(t.startswith("Sfumato listening on ") for t in DRAWN)  # the log lines

    settings = bpy.context.scene.sfumato
    settings.prompt, settings.steps, settings.resolution = "dusk", 1, 64
    assert bpy.ops.sfumato.world_background(wait=True) == {"FINISHED"}
    assert settings.history[-1].model == "tiny-sd"

    assert bpy.ops.sfumato.stop_server() == {"FINISHED"}
    stopped = pump(lambda s: not s.state.alive, timeout=30)[-1]
    assert stopped.state is ServerState.STOPPED and gone(ready.pid)
    assert runtime().connection != "CONNECTED"

    # Started again, then the add-on is disabled (as when Blender quits): the server goes too.
    assert bpy.ops.sfumato.start_server() == {"FINISHED"}
    again = pump(lambda s: s.pid is not None or not s.state.alive, timeout=30)[-1]
    assert again.pid is not None and again.pid != ready.pid
    launcher = submodule("localserver").get().server
    assert bpy.ops.preferences.addon_disable(module=ADDON) == {"FINISHED"}
    assert launcher.status().state is ServerState.STOPPED and gone(again.pid)
    assert bpy.ops.preferences.addon_enable(module=ADDON) == {"FINISHED"}  # for the fixture
    assert f"{ADDON}.localserver" in sys.modules
