"""A server killed mid-job and started again (issue 9, item 14): the add-on either applies the
result (the server ran the job again after its restart) or says plainly that the job was lost
to the restart, frees the panel, and never shows Connected to a server that is gone.

Each test runs its own server on its own results folder, kills it with SIGKILL (no goodbye, no
journal flush beyond what the server already wrote) and starts it again on the same port and
folder. Older servers answer the reconnect's fetch with ``not_found``; newer ones re-run the
job or answer ``interrupted``: the add-on must read all three right.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import bpy
import pytest

from . import scenes
from .conftest import ADDON, Server, runtime, start_server, stop_server, submodule, track
from .test_bridge import drain

LOST = "lost to a server restart — run it again"


class Restartable:
    """This test's own server; ``kill_and_restart`` kills it (SIGKILL) and starts a new one
    on the same port, results folder and model cache."""

    def __init__(self, results: Path, cache: Path) -> None:
        self.cache = cache
        self.servers = [start_server(results, cache)]

    @property
    def now(self) -> Server:
        return self.servers[-1]

    def kill(self) -> None:
        self.now.proc.send_signal(signal.SIGKILL)
        self.now.proc.wait()

    def kill_and_restart(self, results: Path | None = None) -> None:
        """``results``: a different folder, as a server that lost its journal and store."""
        if self.now.proc.poll() is None:
            self.kill()
        first = self.now
        port = str(urlparse(first.url).port)
        folder = results or first.results
        self.servers.append(start_server(folder, self.cache, "--port", port))
        assert self.now.url == first.url


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory, addon: Any) -> Iterator[Restartable]:
    server = Restartable(tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("cache"))
    bpy.context.preferences.addons[ADDON].preferences.url = server.now.url
    yield server
    for each in server.servers:
        if each.proc.poll() is None:
            stop_server(each)


def settings_for_a_long_job() -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution, s.random_seed, s.seed = "moss", 40, 64, False, "4294967295"
    plane, _ = scenes.textured_plane(128, 128)
    scenes.select(plane)
    return s


@pytest.mark.slow
@pytest.mark.parametrize("wait", [False, True], ids=["connect-button", "connect-wait"])
def test_a_job_running_when_the_server_is_killed(own_server: Restartable, wait: bool) -> None:
    s = settings_for_a_long_job()
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    drain(lambda: runtime().status.startswith("step"), timeout=120)  # running on the server
    own_server.kill_and_restart()
    drain(lambda: runtime().connection == "DISCONNECTED", timeout=30)
    assert runtime().busy and "Connect to fetch the result" in runtime().error

    assert bpy.ops.sfumato.connect(wait=wait) == {"FINISHED"}
    drain(lambda: not runtime().busy, timeout=300)
    assert runtime().connection == "CONNECTED"
    assert "not_found" not in runtime().error and "client_id" not in runtime().error, (
        runtime().error
    )
    if runtime().error:  # the server could not run it again
        assert LOST in runtime().error, runtime().error
        assert len(s.history) == 0
    else:  # it ran it again after the restart: applied once
        assert "applied" in runtime().status and len(s.history) == 1
        assert s.history[0].seed == "4294967295"
    assert submodule("bridge").get().pending == {}
    assert bpy.ops.sfumato.inpaint_texture.poll()  # free for the next job


@pytest.mark.slow
def test_a_job_lost_with_the_servers_results_folder(
    own_server: Restartable, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A server restarted without its journal and result store (or one from before the
    journal) knows nothing of the job and answers the reconnect's fetch with ``not_found``:
    the add-on says the job was lost to the restart, not a fetch problem."""
    s = settings_for_a_long_job()
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    job_id = runtime().job_id
    drain(lambda: runtime().status.startswith("step"), timeout=120)
    own_server.kill_and_restart(tmp_path_factory.mktemp("other-results"))
    drain(lambda: runtime().connection == "DISCONNECTED", timeout=30)
    assert bpy.ops.sfumato.connect() == {"FINISHED"}
    drain(lambda: not runtime().busy, timeout=120)
    assert runtime().connection == "CONNECTED"
    assert runtime().error == f"the inpaint job {job_id} was {LOST}", runtime().error
    assert len(s.history) == 0 and bpy.ops.sfumato.inpaint_texture.poll()


@pytest.mark.slow
def test_a_waiting_action_whose_server_is_killed(own_server: Restartable) -> None:
    """``wait=True`` (scripts): the action fails with what to do, the panel is free and says
    Disconnected, not Connected; after the restart a Connect works again."""
    settings_for_a_long_job()
    link = submodule("bridge").get()
    show = link._show

    def kill_once_running(update: object) -> None:
        show(update)
        record = getattr(update, "record", None)
        running = record is not None and record.state.value == "running"
        if running and own_server.now.proc.poll() is None:
            own_server.kill()

    link._show = kill_once_running
    with pytest.raises(RuntimeError, match="run the job again"):
        bpy.ops.sfumato.inpaint_texture(wait=True, timeout=120)
    link._show = show
    assert runtime().connection == "DISCONNECTED" and not runtime().busy
    assert "run the job again" in runtime().error
    assert link.pending == {} and bpy.ops.sfumato.inpaint_texture.poll()
    own_server.kill_and_restart()
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    assert runtime().connection == "CONNECTED"


@pytest.mark.parametrize("code", ["interrupted", "not_found"])
def test_a_lost_job_is_said_plainly(addon: Any, code: str) -> None:
    """The answers a restarted server gives to the reconnect's fetch: ``interrupted`` (it
    knows it lost the job) or, from servers before that code, ``not_found``."""
    from sfumato.protocol import Error, ErrorCode, Job, Task

    bridge = submodule("bridge")
    link = bridge.get()
    pending = bridge.Pending(Job("j-lost", Task.GENERATE), "WORLD", bpy.context.scene.name)
    track(pending, fetched=True)  # fetched: what a reconnect's welcome does
    link.handle(Error(ErrorCode(code), "no result for job j-lost", id="j-lost"))
    assert not runtime().busy and link.pending == {}
    assert runtime().error == f"the world job j-lost was {LOST}"


def test_not_found_without_a_reconnect_stays_what_the_server_said(addon: Any) -> None:
    from sfumato.protocol import Error, ErrorCode, Job, Task

    bridge = submodule("bridge")
    link = bridge.get()
    pending = bridge.Pending(Job("j-other", Task.GENERATE), "WORLD", bpy.context.scene.name)
    track(pending)
    link.handle(Error(ErrorCode.NOT_FOUND, "cancel of an unknown job", id="j-other"))
    assert runtime().error == "cancel of an unknown job [not_found]"


def test_suspended_and_not_ready_are_said_plainly(addon: Any) -> None:
    """A stopping server's ``suspended`` keeps the job (busy, to be fetched after the
    restart) and says so; a welcome that is not ready says why, and no job is prepared."""
    from sfumato.client import Connected, Disconnected
    from sfumato.protocol import Job, Progress, Task, Welcome

    bridge, jobs = submodule("bridge"), submodule("jobs")
    pending = bridge.Pending(Job("j-kept", Task.GENERATE), "WORLD", bpy.context.scene.name)
    link = track(pending)
    link.handle(Progress("j-kept", 0, 0, stage="suspended"))
    link.handle(Disconnected("1012 (service restart)"))
    rt = runtime()
    assert rt.busy and rt.connection == "DISCONNECTED" and "j-kept" in link.pending
    assert "runs it after the restart" in rt.error, rt.error

    link.handle(Connected(Welcome("t", 1, ready=False, status="torch does not import")))
    assert rt.connection == "CONNECTED" and "torch does not import" in rt.error
    with pytest.raises(jobs.UserError, match="cannot run jobs now: torch does not import"):
        jobs.params(bpy.context.scene.sfumato, link.offer, width=64, height=64)
