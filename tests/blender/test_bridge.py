"""The non-blocking path: jobs submitted without ``wait``, events drained by the timer
function (called directly: the bpy module never fires timers), cancel, and the panel."""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import bpy
import numpy as np
import pytest

from . import scenes
from .conftest import runtime, submodule, track


def drain(until: Any, timeout: float = 120.0) -> None:
    """Call the add-on's timer function, as Blender would, until ``until()`` holds."""
    tick = submodule("bridge").tick
    deadline = time.monotonic() + timeout
    while not until():
        interval = tick()
        assert interval is not None, "the timer unregistered itself while the add-on is on"
        assert time.monotonic() < deadline, "no result within the timeout"
        time.sleep(min(interval, 0.05))


@pytest.fixture
def settings(connected: ModuleType) -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution, s.random_seed, s.seed = "moss", 2, 64, False, "5"
    return s


def test_the_timer_applies_a_result(settings: Any) -> None:
    plane, painted = scenes.textured_plane(64, 64)
    scenes.select(plane)
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}  # returns before the result
    assert runtime().busy and runtime().job_id
    assert len(settings.history) == 0
    drain(lambda: not runtime().busy)
    assert runtime().error == "", runtime().error
    assert runtime().progress == 1.0 and "applied" in runtime().status
    entry = settings.history[-1]
    assert entry.job_id == runtime().job_id and entry.previous_image is painted
    node = plane.material_slots[0].material.node_tree.nodes["Image Texture"]
    assert node.image is entry.image
    assert submodule("bridge").get().pending == {}


def test_progress_reaches_the_panel_state(settings: Any) -> None:
    settings.steps = 6
    plane, _ = scenes.textured_plane(64, 64)
    scenes.select(plane)
    bridge = submodule("bridge")
    seen: list[str] = []
    show = bridge.get()._show

    def spy(update: object) -> None:
        show(update)
        record = getattr(update, "record", None)
        seen.append(f"{type(update).__name__} {record.state.value}" if record else "")

    bridge.get()._show = spy
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    drain(lambda: not runtime().busy)
    # a timer call shows one batch of updates, each record as it is by then: at least
    # accepted + one step before the end
    assert seen.count("JobChanged running") >= 2, seen
    assert [s for s in seen if s][-1] == "JobEnded done"
    welcome = bridge.get().client.welcome
    if "preview" in welcome.capabilities:  # previews come with the engine's preview support
        assert runtime().preview is not None and runtime().preview.size[0] > 0


def test_cancel_stops_the_job(settings: Any) -> None:
    settings.steps = 150  # minutes of work on two cores: the cancel lands long before the end
    plane, painted = scenes.textured_plane(512, 256)
    scenes.select(plane)
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    assert bpy.ops.sfumato.cancel() == {"FINISHED"}
    drain(lambda: not runtime().busy, timeout=60)
    assert runtime().status == "cancelled", (runtime().status, runtime().error)
    assert len(settings.history) == 0
    assert plane.material_slots[0].material.node_tree.nodes["Image Texture"].image is painted
    assert bpy.ops.sfumato.inpaint_texture.poll()  # free for the next job


def test_connect_button_connects_in_the_background(settings: Any) -> None:
    assert bpy.ops.sfumato.connect() == {"FINISHED"}
    drain(lambda: runtime().connection == "CONNECTED", timeout=30)
    assert runtime().server_version and "tiny-sd" in runtime().models
    assert "noise" in runtime().notice  # the tiny model says what it draws
    # the server machine's facts in short (welcome.system): the model counts at least
    assert " models present" in runtime().system, runtime().system


def test_connect_button_shows_a_dead_server(addon: ModuleType) -> None:
    bpy.context.preferences.addons[addon.__name__].preferences.url = "ws://127.0.0.1:9"
    assert bpy.ops.sfumato.connect() == {"FINISHED"}
    drain(lambda: runtime().connection == "DISCONNECTED" and runtime().error != "", timeout=30)
    assert "sfumato serve" in runtime().error


class RecordingLayout:
    """Stands in for bpy.types.UILayout, which only exists inside a window (none headless).
    It checks what the panels name: every property exists on its owner, every operator is
    registered, every list class is registered."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name in {"prop", "prop_search", "template_ID"}:
                owner, prop = args[0], args[1]
                assert prop in owner.bl_rna.properties, f"{owner} has no property {prop}"
            if name == "prop_search":
                assert args[3] in args[2].bl_rna.properties
            if name == "operator":
                category, op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, category), op), args[0]
            if name == "template_list":
                assert hasattr(bpy.types, args[0]), args[0]
            return RecordingLayout(self.calls)

        return method


def test_panels_draw(settings: Any) -> None:
    panels = submodule("panels")
    scenes.camera()
    runtime().error, runtime().notice, runtime().busy, runtime().status = "x", "y", True, "step 1"
    runtime().loras.add().name = "some-lora"
    entry = settings.history.add()
    entry.name, entry.kind = "a result", "TEXTURE"
    for cls in panels.CLASSES:
        if issubclass(cls, bpy.types.Panel):
            calls: list[str] = []
            cls.draw(_Self(RecordingLayout(calls)), bpy.context)
            assert calls, cls.__name__
    calls = []
    panels.SFUMATO_UL_history.draw_item(
        None, bpy.context, RecordingLayout(calls), settings, entry, 0, settings, "history_index"
    )
    assert "label" in calls
    runtime().connection = "DISCONNECTED"
    calls = []
    panels.SFUMATO_PT_main.draw(_Self(RecordingLayout(calls)), bpy.context)
    assert calls.count("label") >= 4  # how to start a server


class _Self:
    """The ``self`` a panel's draw() uses: only its layout."""

    def __init__(self, layout: RecordingLayout) -> None:
        self.layout = layout


def test_results_stay_in_the_right_order_of_rows(settings: Any) -> None:
    """scene.new_image flips rows: the protocol's row 0 (top) is Blender's last row."""
    scene_io = submodule("scene")
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[0] = 255  # top row white
    image = scene_io.new_image("rows", pixels)
    stored = scenes.pixels(image)
    assert stored[-1, :, :3].min() == 1.0 and stored[0, :, :3].max() == 0.0
    assert image.packed_file is not None


def test_progress_events_fill_the_bar_and_the_preview(addon: ModuleType) -> None:
    """The bridge's handling of progress, fed directly (the server sends previews only once
    the engine has them): the bar, the status and the preview image."""
    from sfumato.protocol import Array, Job, Progress, Task

    bridge = submodule("bridge")
    pending = bridge.Pending(Job("j-preview", Task.GENERATE), "WORLD", bpy.context.scene.name)
    track(pending)
    bridge.get().handle(Progress("j-preview", 0, 0, stage="loading"))
    assert runtime().status == "loading the model" and runtime().busy
    picture = np.zeros((32, 48, 3), dtype=np.uint8)
    picture[:16] = 200  # the top half bright
    bridge.get().handle(Progress("j-preview", 2, 8, preview=Array.from_numpy(picture)))
    assert runtime().progress == pytest.approx(0.25) and runtime().status == "step 2 of 8"
    preview = runtime().preview
    assert tuple(preview.size) == (48, 32)
    assert scenes.pixels(preview)[-1, 0, 0] == pytest.approx(200 / 255)  # top row last
    bridge.get().handle(Progress("j-preview", 3, 8, preview=Array.from_numpy(picture[:16])))
    assert runtime().preview == preview and tuple(preview.size) == (48, 16)  # reused, resized


def _drop(client: Any) -> None:
    """A network drop: the socket dies under the websocket, no closing handshake."""
    import socket

    client._ws.socket.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("wait", [False, True], ids=["connect-button", "connect-wait"])
def test_a_dropped_connection_is_fetched_again_on_reconnect(
    settings: Any, wait: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drop the connection mid-job, reconnect through the add-on (the Connect button, or
    ``wait=True`` as scripts and the actions do): the same client_id comes back, the job is
    fetched once, its result (live or from the store) is applied exactly once, and the panel
    ends idle."""
    from sfumato.client import Client

    fetched: list[str] = []
    fetch = Client.fetch

    def counting_fetch(self: Client, job_id: str) -> None:
        fetched.append(job_id)
        fetch(self, job_id)

    monkeypatch.setattr(Client, "fetch", counting_fetch)
    settings.steps = 12
    plane, painted = scenes.textured_plane(128, 128)
    scenes.select(plane)
    link = submodule("bridge").get()
    applied: list[str] = []
    apply = link._apply

    def counting(target: Any, pending: Any, result: Any) -> str:
        applied.append(result.id)
        return apply(target, pending, result)

    link._apply = counting
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    job_id, client_id = runtime().job_id, link.client.client_id
    assert client_id and link.client_id == client_id
    drain(lambda: runtime().status.startswith("step"), timeout=60)  # running on the server
    _drop(link.client)
    drain(lambda: runtime().connection == "DISCONNECTED", timeout=30)
    assert runtime().busy and "Connect to fetch the result" in runtime().error
    assert job_id in link.pending

    assert bpy.ops.sfumato.connect(wait=wait) == {"FINISHED"}
    drain(lambda: not runtime().busy, timeout=120)
    assert link.client.client_id == client_id == link.client_id
    assert runtime().connection == "CONNECTED"
    assert runtime().error == "", runtime().error
    assert "applied" in runtime().status and runtime().progress == 1.0
    for _ in range(10):  # a second copy of the result (live and stored) must not apply again
        submodule("bridge").tick()
        time.sleep(0.05)
    assert applied == [job_id]
    assert fetched == [job_id]  # once per reconnect, however the welcome reached the bridge
    assert len(settings.history) == 1 and settings.history[0].job_id == job_id
    node = plane.material_slots[0].material.node_tree.nodes["Image Texture"]
    assert node.image is settings.history[0].image and node.image is not painted
    assert link.pending == {}
    assert bpy.ops.sfumato.inpaint_texture.poll()  # free for the next job


def test_an_applied_result_is_one_undo_step(settings: Any) -> None:
    """The timer pushes an undo step after applying (headless too: the bpy module keeps an
    undo stack), so undo takes the result back and redo brings it again; undoing back to
    while the job ran leaves the panel free, not stuck running."""
    plane, painted = scenes.textured_plane(64, 64)
    scenes.select(plane)
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    bpy.ops.ed.undo_push(message="before the result")  # what the user did while it ran
    drain(lambda: not runtime().busy)
    assert runtime().error == "" and len(settings.history) == 1

    names = plane.name, painted.name, settings.history[0].image.name  # undo reloads the data

    def node_image() -> str:
        material = bpy.data.objects[names[0]].material_slots[0].material
        return material.node_tree.nodes["Image Texture"].image.name

    assert node_image() == names[2]
    assert bpy.ops.ed.undo() == {"FINISHED"}  # back to "before the result"
    undone = bpy.context.scene.sfumato
    assert len(undone.history) == 0 and node_image() == names[1]
    # the running job's state is the session's (the window manager's), which undo never
    # touches: no job runs, so the panel is free
    submodule("bridge").tick()
    assert not runtime().busy and bpy.ops.sfumato.inpaint_texture.poll()
    assert bpy.ops.ed.redo() == {"FINISHED"}  # the result's own step
    redone = bpy.context.scene.sfumato
    assert len(redone.history) == 1 and node_image() == names[2]
    assert not runtime().busy and "applied" in runtime().status


def test_a_file_saved_while_connected_and_busy_never_reopens_so(
    settings: Any, tmp_path: Any
) -> None:
    """The connection, the models and the running job live on the window manager, which a
    .blend does not keep: the saved file opens idle, and says Connected only while this
    Blender really is connected."""
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    settings.steps = 150  # still running when the file is saved
    plane, _ = scenes.textured_plane(256, 256)
    scenes.select(plane)
    assert bpy.ops.sfumato.inpaint_texture() == {"FINISHED"}
    assert runtime().connection == "CONNECTED" and runtime().busy and len(runtime().models)
    path = str(tmp_path / "saved-while-connected.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    assert bpy.ops.sfumato.cancel() == {"FINISHED"}
    drain(lambda: not runtime().busy, timeout=60)

    assert bpy.ops.wm.open_mainfile(filepath=path) == {"FINISHED"}  # still connected
    assert not runtime().busy and runtime().job_id == "" and runtime().status == ""
    submodule("bridge").tick()
    assert runtime().connection == "CONNECTED" and "tiny-sd" in runtime().models  # the truth
    assert bpy.ops.sfumato.inpaint_texture.poll()

    submodule("bridge").get().close()  # as when Blender quits
    assert bpy.ops.wm.open_mainfile(filepath=path) == {"FINISHED"}
    submodule("bridge").tick()
    rt = runtime()
    assert rt.connection == "DISCONNECTED" and not rt.busy and rt.job_id == ""
    assert len(rt.models) == 0 and rt.server_version == "" and rt.error == ""
    assert bpy.context.scene.sfumato.prompt == "moss"  # the file's own settings came back
    assert bpy.context.scene.sfumato.steps == 150


def test_loras_and_limits_come_from_the_server(addon: ModuleType) -> None:
    """The panel lists the LoRAs of the chosen model's family (unapproved ones greyed), a
    job sends only usable ones, and steps and sizes are held to the server's own limits
    from its welcome, not to numbers of the add-on's."""
    from sfumato.client import Connected
    from sfumato.protocol import Limits, ModelInfo, Welcome

    jobs, panels = submodule("jobs"), submodule("panels")
    models = (
        ModelInfo("tiny-sd", "tiny-sd", "base"),
        ModelInfo("xl", "sdxl", "base"),
        ModelInfo("fits", "tiny-sd", "lora"),
        ModelInfo("secret", "tiny-sd", "lora", approved=False),
        ModelInfo("xl-lora", "sdxl", "lora"),
    )
    welcome = Welcome(
        "test", 1, capabilities=("generate", "lora", "tile", "preview"), models=models,
        default_model="tiny-sd", limits=Limits(max_steps=30, max_image_side=512), client_id="c",
    )  # fmt: skip
    link = submodule("bridge").get()
    link.handle(Connected(welcome))
    rt, settings = runtime(), bpy.context.scene.sfumato
    assert rt.connection == "CONNECTED" and (rt.max_steps, rt.max_image_side) == (30, 512)
    listed = panels.fitting_loras(rt, settings.model)
    assert [(lo.name, lo.approved) for lo in listed] == [("fits", True), ("secret", False)]
    assert "not approved" in listed[1].note
    settings.model = "xl"
    assert [lo.name for lo in panels.fitting_loras(rt, settings.model)] == ["xl-lora"]
    settings.model = ""
    for lora in rt.loras:
        lora.use = True
    sent = jobs.params(settings, link.offer, width=64, height=64)
    assert [lo.name for lo in sent.loras] == ["fits"]  # never another family's, nor unapproved
    settings.steps = 31
    with pytest.raises(jobs.UserError, match="steps 31 is over this server's limit of 30"):
        jobs.params(settings, link.offer, width=64, height=64)
    settings.steps, settings.resolution = 30, 4096
    assert jobs._frame(2, 1, settings, link.offer) == (512, 256)  # the server's largest side
