"""The plugin's decisions without Krita: regions, jobs, placements and the session's state.
These run everywhere (the server environment has sfumato; Krita is not needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from sfumato_krita.jobs import (
    USES_STRENGTH,
    CanvasInput,
    Mode,
    PluginError,
    Rect,
    Request,
    build_job,
    placement_for,
    region_for,
)
from sfumato_krita.model import JobState, Link, SendFailed, Session, Settings

from sfumato.client import Connected, Disconnected
from sfumato.protocol import (
    Accepted,
    Array,
    DType,
    Error,
    ErrorCode,
    Limits,
    ModelInfo,
    Progress,
    Result,
    SystemInfo,
    Task,
    Welcome,
)

CAPS = ("generate", "refine", "inpaint", "variants", "cancel")


def rgb(h: int, w: int, value: int = 9) -> Array:
    return Array(DType.UINT8, (h, w, 3), bytes([value]) * (h * w * 3))


def test_region_is_the_selection_plus_context_clamped_and_at_least_64() -> None:
    assert region_for(Mode.GENERATE, 200, 100, Rect(50, 40, 20, 10), 8) == Rect(28, 13, 64, 64)
    assert region_for(Mode.INPAINT, 200, 100, Rect(0, 0, 100, 90), 32) == Rect(0, 0, 132, 100)
    assert region_for(Mode.GENERATE, 200, 100, None, 32) == Rect(0, 0, 200, 100)
    assert region_for(Mode.EXPAND, 200, 100, Rect(5, 5, 5, 5), 32) == Rect(0, 0, 200, 100)
    assert region_for(Mode.GENERATE, 40, 30, Rect(1, 1, 2, 2), 4) == Rect(0, 0, 40, 30)


def test_generate_rounds_its_size_up_and_crops_back() -> None:
    inp = CanvasInput(300, 200, Rect(10, 20, 94, 84), None, None)
    job = build_job(Request(Mode.GENERATE, "x", seed=3, variants=2), inp, CAPS, "j1")
    assert (job.task, job.params.width, job.params.height) == (Task.GENERATE, 96, 88)
    assert job.image is None and job.params.preview_every == 0
    result = Result("j1", Task.GENERATE, (rgb(88, 96), rgb(88, 96)), (3, 4), "tiny-sd")
    placement = placement_for(job, Request(Mode.GENERATE, "x"), inp, result)
    first, second = placement.layers
    assert (first.x, first.y, first.image.shape) == (10, 20, (84, 94, 3))
    assert (first.name, first.visible, second.name, second.visible) == (
        "x · seed 3", True, "x · seed 4", False,
    )  # fmt: skip
    assert placement.group == "Sfumato" and not placement.at_bottom


def test_inpaint_without_a_selection_masks_everything() -> None:
    image = Array(DType.UINT8, (64, 64, 4), bytes(64 * 64 * 4))
    inp = CanvasInput(64, 64, Rect(0, 0, 64, 64), image, None)
    job = build_job(Request(Mode.INPAINT), inp, CAPS, "j2")
    assert job.mask is not None and bytes(job.mask.data) == b"\xff" * 64 * 64


def test_what_the_server_lacks_is_refused_with_what_to_do() -> None:
    """The host session's offer check refuses it (the same as in Blender); the docker's
    message names the widget to change."""
    image = Array(DType.UINT8, (64, 64, 4), bytes(64 * 64 * 4))
    inp = CanvasInput(64, 64, Rect(0, 0, 64, 64), image, None)
    session = Session(Settings(mode=Mode.EXPAND, expand=16))
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    with pytest.raises(PluginError, match=r"does not offer the outpaint task.*\(Mode\)$"):
        session.start_job(inp)
    assert session.jobs == {} and session.host.jobs == {}
    session.settings.mode, session.settings.variants = Mode.GENERATE, 2
    session.handle(Connected(Welcome("0.1", 1, ("generate",))))
    with pytest.raises(PluginError, match=r"does not offer variants.*\(Variants\)$"):
        session.start_job(inp)
    session.settings.mode = Mode.EXPAND
    session.handle(Connected(Welcome("0.1", 1, (*CAPS, "outpaint"))))
    session.settings.variants = 1
    job = session.start_job(inp)
    assert job.params.expand == (16, 16, 16, 16)
    result = Result(job.id, Task.OUTPAINT, (rgb(96, 96),), (1,), "m")
    placement = placement_for(job, Request(Mode.EXPAND, expand=16), inp, result)
    assert placement.grow == (-16, -16, 96, 96)
    alpha = placement.layers[0].alpha
    assert alpha is not None and alpha.shape == (96, 96, 1)
    rows = [bytes(alpha.data[y * 96 : (y + 1) * 96]) for y in range(96)]
    assert rows[0] == rows[15] == rows[80] == rows[95] == b"\xff" * 96  # the new margins
    assert all(r == b"\xff" * 16 + bytes(64) + b"\xff" * 16 for r in rows[16:80])  # original


def test_strength_is_sent_only_by_the_modes_it_steers() -> None:
    for mode in Mode:
        request = Settings(mode=mode, strength=0.4).request()
        assert request.strength == (0.4 if mode in USES_STRENGTH else 1.0), mode


def test_background_goes_to_its_own_group_at_the_bottom() -> None:
    inp = CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None)
    result = Result("j4", Task.GENERATE, (rgb(64, 64),), (1,), "m")
    job = build_job(Request(Mode.BACKGROUND, "sky"), inp, CAPS, "j4")
    placement = placement_for(job, Request(Mode.BACKGROUND, "sky"), inp, result)
    assert (placement.group, placement.at_bottom) == ("Sfumato background", True)


def test_session_follows_a_job_and_fetches_it_after_the_connection_drops() -> None:
    """Issue 10 item 1: a dropped connection no longer fails the running job; the job stays
    tracked and the next welcome fetches it (the host session's reconnect)."""
    session = Session()
    seen: list[str] = []
    session.subscribe(lambda s: seen.append(s.link.value))
    models = (ModelInfo("tiny-sd", "tiny-sd", "base", tiny=True), ModelInfo("s", "tiny-sd", "lora"))
    session.settings.model, session.settings.loras = "gone", {"s": 0.5, "old": 1.0}
    session.handle(Connected(Welcome("0.1", 1, (*CAPS, "lora"), models, "tiny-sd")))
    assert session.link is Link.CONNECTED and "noise" in session.status
    assert session.machine == ""  # this welcome says nothing of the server's machine
    assert session.settings.model is None and session.settings.loras == {"s": 0.5}
    assert session.base_models() == ["tiny-sd"] and session.loras() == ["s"]
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert job.params.model == "tiny-sd" and [lo.name for lo in job.params.loras] == ["s"]
    session.handle(Accepted(job.id, 2))
    assert session.jobs[job.id].state is JobState.QUEUED
    assert session.jobs[job.id].status() == "queued (2 ahead)"
    session.handle(Progress(job.id, 1, 4))
    assert session.jobs[job.id].state is JobState.RUNNING and session.busy
    session.handle(Disconnected("server went away"))
    record = session.jobs[job.id]
    assert not record.state.finished and session.busy, "still tracked, to fetch"
    assert "fetches its result" in session.message
    assert session.link is Link.DISCONNECTED and seen[-1] == "disconnected"
    with pytest.raises(PluginError, match="not connected"):
        session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert session.host.to_send() == []
    client_id = session.host.client_id
    session.handle(Connected(Welcome("0.1", 1, CAPS, models, "tiny-sd", client_id=client_id)))
    assert [f.id for f in session.host.to_send()] == [job.id]  # asked for again, once
    assert "fetching the result" in session.message
    ended = session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (1,), "tiny-sd"))
    assert [e.record.id for e in ended] == [job.id] and ended[0].placement is not None
    assert record.state is JobState.DONE and not session.busy
    assert session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (1,), "tiny-sd")) == []


def test_a_job_lost_to_a_server_restart_says_to_run_it_again() -> None:
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS, client_id="c1")))
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    session.handle(Disconnected("no close frame received or sent"))
    session.handle(Connected(Welcome("0.1", 1, CAPS, client_id="c1")))
    (ended,) = session.handle(Error(ErrorCode.NOT_FOUND, "no result", id=job.id))
    assert ended.placement is None and ended.record.state is JobState.LOST
    assert "lost to a server restart — run it again" in session.message
    assert "fetch" not in session.message and not session.busy


def test_a_send_failure_is_shown_not_raised() -> None:
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    (ended,) = session.handle(SendFailed(job.id, "the server closed the connection"))
    assert ended.placement is None and not session.busy
    assert session.jobs[job.id].state is JobState.FAILED
    assert session.message == "the server closed the connection"


def test_only_loras_of_the_models_family_are_offered_and_unapproved_ones_are_not_usable() -> None:
    models = (
        ModelInfo("sd", "sd15", "base"), ModelInfo("xl", "sdxl", "base"),
        ModelInfo("ink", "sd15", "lora"), ModelInfo("xl-ink", "sdxl", "lora"),
        ModelInfo("banned", "sd15", "lora", approved=False),
    )  # fmt: skip
    session = Session()
    session.settings.loras = {"ink": 0.5, "xl-ink": 1.0}
    session.handle(Connected(Welcome("0.1", 1, (*CAPS, "lora"), models, "sd")))
    # no model chosen: the server default's family (sd15)
    assert [(c.name, c.usable) for c in session.lora_choices()] == [
        ("ink", True), ("banned", False),
    ]  # fmt: skip
    assert "not approved" in session.lora_choices()[1].note
    assert session.loras() == ["ink"] and session.settings.loras == {"ink": 0.5}
    session.choose_model("xl")
    assert session.loras() == ["xl-ink"] and session.settings.loras == {}
    session.settings.loras = {"ink": 1.0}  # a stale tick is refused, not sent
    with pytest.raises(PluginError, match=r"LoRA 'ink' does not fit the model 'xl' \(sdxl\)"):
        session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    session.settings.loras = {"xl-ink": 0.8}
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert [(lo.name, lo.weight) for lo in job.params.loras] == [("xl-ink", 0.8)]


def test_a_region_over_the_servers_max_image_side_is_refused_with_what_to_do() -> None:
    image = Array(DType.UINT8, (1, 1, 4), bytes(4))  # the size check comes first
    big = CanvasInput(5000, 3000, Rect(0, 0, 5000, 3000), image, None)
    for mode in (Mode.GENERATE, Mode.REFINE, Mode.INPAINT):
        with pytest.raises(PluginError, match=r"the region is 5000×3000; this server accepts "
                           r"at most 4096 a side — select a smaller region or scale"):  # fmt: skip
            build_job(Request(mode), big, CAPS, "j", max_side=4096)
    whole = Array(DType.UINT8, (1500, 2000, 4), bytes(2000 * 1500 * 4))  # the image's size
    small = CanvasInput(2000, 1500, Rect(0, 0, 2000, 1500), whole, None)
    caps = (*CAPS, "outpaint", "upscale")
    with pytest.raises(PluginError, match=r"makes it 2128×1628; .* at most 2048 .* scale the"):
        build_job(Request(Mode.EXPAND), small, caps, "j", max_side=2048)
    with pytest.raises(PluginError, match=r"×2 makes it 4000×3000; .* at most 1024 a side"):
        build_job(Request(Mode.UPSCALE), small, caps, "j", max_side=2048)
    # exactly at the limit (4093 rounds up to 4096) is sent
    edge = CanvasInput(4093, 64, Rect(0, 0, 4093, 64), None, None)
    assert build_job(Request(Mode.GENERATE), edge, CAPS, "j", max_side=4096).params.width == 4096

    session = Session()  # the session uses the limit the server announced, and sends nothing
    session.handle(Connected(Welcome("0.1", 1, CAPS, limits=Limits(max_image_side=1024))))
    with pytest.raises(PluginError, match=r"the region is 2000×100; .* at most 1024 a side"):
        session.start_job(CanvasInput(2000, 100, Rect(0, 0, 2000, 100), None, None))
    assert session.jobs == {} and "at most 1024" in session.message


def test_a_refusal_hides_the_last_job_and_a_running_job_blocks_a_second() -> None:
    """Issue 18 items 5 and 6: no old "done" and preview under a refusal; one job at a time."""
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    first = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    session.handle(Progress(first.id, 1, 4))
    with pytest.raises(PluginError, match="still running"):
        session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert list(session.jobs) == [first.id] and session.current == first.id  # still in view
    session.handle(Result(first.id, Task.GENERATE, (rgb(64, 64),), (1,), "tiny-sd"))
    assert session.job() is not None and session.job().state is JobState.DONE
    session.settings.loras = {"missing": 1.0}  # this server offers no LoRAs at all
    with pytest.raises(PluginError, match=r"does not offer LoRAs.*\(the LoRAs\)"):
        session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert session.job() is None and "LoRAs" in session.message


@pytest.mark.parametrize("covered", [True, False])
def test_a_background_under_opaque_layers_says_it_is_hidden(covered: bool) -> None:
    session = Session(Settings(mode=Mode.BACKGROUND))
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    inp = CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None, covered=covered)
    job = session.start_job(inp)
    session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (1,), "tiny-sd"))
    assert session.jobs[job.id].state is JobState.DONE
    assert ("cover it completely" in session.message) is covered


def test_a_result_for_a_closed_image_is_reported_as_not_added() -> None:
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (1,), "tiny-sd"))
    session.orphaned(job.id)
    record = session.jobs[job.id]
    assert record.state is JobState.FAILED and record.purpose.layers == []
    assert "nothing was added" in session.message and "fetch" not in session.message


def test_a_broken_connection_is_retried_and_says_so_a_failed_first_attempt_is_not() -> None:
    """Issue 18 item 5: a killed server gave a bare "no close frame…" and no reconnect."""
    session = Session()
    session.connecting()
    session.handle(Disconnected("no Sfumato server answers"))
    assert not session.retry and session.status == "disconnected: no Sfumato server answers"
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    session.handle(Progress(job.id, 1, 4))
    session.handle(Disconnected("no close frame received or sent"))
    assert session.retry and "lost the connection" in session.status
    assert "trying again every" in session.status
    assert job.id in session.message  # the job it was running is not silently gone
    session.connecting()
    session.handle(Disconnected("no Sfumato server answers"))
    assert session.retry  # still down: keep trying
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    assert not session.retry and session.link is Link.CONNECTED


def test_models_and_loras_whose_weights_are_missing_are_marked_and_not_run() -> None:
    """Issue 18 item 6: the server marks entries without weights (ModelInfo.available)."""
    models = (
        ModelInfo("sd", "sd15", "base"), ModelInfo("gone", "sd15", "base", available=False),
        ModelInfo("banned", "sd15", "base", approved=False),
        ModelInfo("ink", "sd15", "lora"), ModelInfo("ink-gone", "sd15", "lora", available=False),
    )  # fmt: skip
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, (*CAPS, "lora"), models, "sd")))
    choices = {c.name: (c.label, c.usable) for c in session.model_choices()}
    assert choices == {
        "sd": ("sd", True), "gone": ("gone — weights missing", False),
        "banned": ("banned — not approved", False),
    }  # fmt: skip
    assert "weights are not on the server" in session.model_choices()[1].note
    assert [(c.name, c.usable) for c in session.lora_choices()] == [
        ("ink", True), ("ink-gone", False),
    ]  # fmt: skip
    assert session.loras() == ["ink"]
    session.settings.model = "gone"
    with pytest.raises(PluginError, match=r"'gone' cannot run: its weights are not on the server"):
        session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
    assert session.host.jobs == {}


def test_ended_jobs_are_let_go_when_the_next_starts_and_a_failed_reconnect_is_not_retried() -> None:
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS, client_id="c1")))
    ids = []
    for n in range(3):
        job = session.start_job(CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None))
        ids.append(job.id)
        session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (n,), "tiny-sd"))
    assert list(session.jobs) == ids[-1:] and session.started == 3
    session.connecting()  # Connect pressed again, to a server that does not answer
    session.handle(Disconnected("no Sfumato server answers"))
    assert not session.retry and session.status.startswith("disconnected")


def test_the_docker_shows_the_server_machine_line_and_warnings() -> None:
    warning = "jobs will run on the CPU: minutes per real image; install torch's CUDA build"
    system = SystemInfo("cpu", 0, "2.5.1", 3, 1, (warning,))
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, CAPS, (), "m", system=system)))
    assert session.machine == f"cpu · torch 2.5.1 · 3 of 4 models present\n{warning}"
    session.handle(Disconnected("gone"))
    assert session.machine == ""
