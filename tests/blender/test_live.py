"""The live viewport end to end: real bpy with the installed extension, the real server on
the tiny model, the depsgraph handler fired by real scene changes. The bpy module fires no
timers, so the tests call Live's and the bridge's timer functions as Blender would."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import bpy
import numpy as np
import pytest

from . import scenes
from .conftest import submodule
from .test_bridge import RecordingLayout, _Self


@pytest.fixture
def live(connected: Any) -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.random_seed, s.seed = "wet clay", False, "7"
    s.live.resolution, s.live.steps = 64, 1
    module = submodule("live")
    ends: list[Any] = []
    link = submodule("bridge").get()
    original = link.enders["LIVE"]

    def record(ended: Any) -> None:  # every live job's end, then Live's own handling
        ends.append(ended)
        original(ended)

    link.enders["LIVE"] = record
    module.ends = ends
    yield module
    module.stop()
    link.enders["LIVE"] = original


def drive(live: Any, until: Callable[[], bool], timeout: float = 30.0) -> None:
    """Blender's timers, ticking until ``until()`` holds."""
    tick = submodule("bridge").tick
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out waiting for the live viewport"
        live.tick()
        tick()
        time.sleep(0.02)


def settle(live: Any, seconds: float = 0.6) -> None:
    """Keep ticking past the debounce: whatever would be sent, is."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        live.tick()
        submodule("bridge").tick()
        time.sleep(0.02)


def shown_pixels(image: Any) -> np.ndarray:
    """The live image as the protocol's uint8 rows (top first), for comparing to a result."""
    width, height = image.size
    flat = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    return np.round(flat.reshape(height, width, 4)[::-1] * 255).astype(np.uint8)


def state() -> Any:
    return bpy.context.window_manager.sfumato_live


def test_a_camera_move_sends_one_live_job_and_the_live_image_updates_in_place(live) -> None:
    cam = scenes.camera(width=64, height=64)
    box = scenes.cube()
    scenes.select(box)
    history = len(bpy.context.scene.sfumato.history)

    assert bpy.ops.sfumato.live() == {"FINISHED"} and state().on
    drive(live, lambda: state().shown == 1)
    assert state().sent == 1 and state().error == ""
    image = bpy.data.images["Sfumato Live"]
    assert box.material_slots[0].material.name == "Sfumato Live"
    assert box.modifiers.get("Sfumato Live") is not None
    rows = submodule("projection").rows_of(box, "Sfumato Live")
    settle(live)
    assert state().sent == 1, "placing the result counted as a change (the guard failed)"

    cam.location.x += 0.5  # one move: the handler fires on the update
    bpy.context.view_layer.update()
    drive(live, lambda: state().shown == 2)
    settle(live)
    assert state().sent == 2, "one camera move is exactly one live job"
    assert not np.allclose(submodule("projection").rows_of(box, "Sfumato Live"), rows)
    newest = [e for e in live.ends if e.result is not None][-1]
    np.testing.assert_array_equal(
        shown_pixels(image)[..., :3], newest.result.images[0].to_numpy()[..., :3]
    )

    for step in range(8):  # a burst: a drag of eight small moves, quicker than the debounce
        cam.location.z += 0.05
        bpy.context.view_layer.update()
        live.tick()
        time.sleep(0.01 * (step % 2))
    drive(live, lambda: not live.LIVE.loop.dirty and live.LIVE.loop.current is None)
    settle(live)
    assert 3 <= state().sent <= 4, f"a burst sent {state().sent - 2} jobs, at most 2 allowed"
    assert len(bpy.context.scene.sfumato.history) == history, "live results stay out of history"
    assert [i.name for i in bpy.data.images if i.name.startswith("Sfumato Live")] == [image.name]
    calls: list[str] = []
    submodule("liveops").SFUMATO_PT_live.draw(_Self(RecordingLayout(calls)), bpy.context)
    assert "operator" in calls and "label" in calls


def test_live_off_cancels_the_running_job_sends_nothing_more_and_puts_things_back(
    live,
) -> None:
    s = bpy.context.scene.sfumato
    s.live.mode, s.live.steps = "BACKDROP", 60  # long enough to be running when Live goes off
    cam = scenes.camera(width=64, height=64)
    scenes.cube()
    before = (len(cam.data.background_images), cam.data.show_background_images)
    session = submodule("bridge").get().link.session

    assert bpy.ops.sfumato.live() == {"FINISHED"}
    drive(live, lambda: state().sent == 1)
    job_id = live.LIVE.loop.current
    drive(live, lambda: session.jobs[job_id].step >= 1)  # denoising
    assert bpy.ops.sfumato.live() == {"FINISHED"} and not state().on
    drive(live, lambda: job_id not in session.jobs)
    assert [e.state.value for e in live.ends] == ["cancelled"]
    cam.location.x += 1.0
    bpy.context.view_layer.update()
    settle(live)
    assert state().sent == 1 and not session.jobs, "Live off still sent a job"
    assert (len(cam.data.background_images), cam.data.show_background_images) == before
