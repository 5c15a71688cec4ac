"""The host-neutral session's pure parts, with inputs we did not choose: the output size,
the offer's checks and LoRA choice, history records, and the job state machine over any
interleaving of events (duplicates, drops, reconnects, restarts)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.client import Connected, Disconnected
from sfumato.hostsession import (
    LOST,
    HistoryRecord,
    HostError,
    HostSession,
    JobEnded,
    JobState,
    Link,
    Linked,
    Notice,
    Offer,
    Unlinked,
)
from sfumato.protocol import (
    Accepted,
    Array,
    Cancelled,
    DType,
    Error,
    ErrorCode,
    Fetch,
    Job,
    JobParams,
    Limits,
    LoraRef,
    ModelInfo,
    Progress,
    ProtocolError,
    Result,
    Task,
    Tile,
    Welcome,
)
from sfumato.protocol.messages import SEED_MAX

CAPS = ("generate", "refine", "inpaint", "outpaint", "upscale", "variants", "cancel", "fetch",
        "control", "lora", "tile", "preview")  # fmt: skip
FAMILIES = ("sd15", "sdxl", "tiny-sd")


def image(width: int, height: int, channels: int = 3) -> Array:
    return Array(DType.UINT8, (height, width, channels), bytes(width * height * channels))


def welcome(**kwargs: object) -> Welcome:
    models = (
        ModelInfo("tiny-sd", "tiny-sd", "base", tiny=True),
        ModelInfo("xl", "sdxl", "base"),
        ModelInfo("tiny-lora", "tiny-sd", "lora"),
        ModelInfo("tiny-secret", "tiny-sd", "lora", approved=False),
        ModelInfo("xl-lora", "sdxl", "lora"),
    )
    values: dict[str, object] = dict(
        server="1", protocol=1, capabilities=CAPS, models=models, default_model="tiny-sd",
        client_id="c1",
    )  # fmt: skip
    values.update(kwargs)
    return Welcome(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output size

side = st.integers(min_value=8, max_value=600)


@st.composite
def jobs_with_images(draw: st.DrawFn) -> Job:
    # the tasks that paint one picture (multiview and train have inputs of their own)
    task = draw(st.sampled_from([t for t in Task if t not in (Task.MULTIVIEW, Task.TRAIN)]))
    w, h = draw(side), draw(side)
    expand = tuple(draw(st.lists(st.integers(0, 300), min_size=4, max_size=4)))
    params = JobParams(
        width=draw(st.integers(8, 300)) * 8, height=draw(st.integers(8, 300)) * 8,
        expand=expand if task is Task.OUTPAINT else (0, 0, 0, 0),  # type: ignore[arg-type]
        scale=draw(st.integers(2, 4)), strength=1.0,
    )  # fmt: skip
    if task is Task.GENERATE:
        return Job("j", task, params)
    mask = image(w, h, 1) if task is Task.INPAINT else None
    return Job("j", task, params, image(w, h), mask)


@given(jobs_with_images(), st.integers(min_value=64, max_value=2048))
def test_output_size_is_what_the_limit_check_refuses(job: Job, max_side: int) -> None:
    width, height = job.output_size()
    if job.image is None:
        assert (width, height) == (job.params.width, job.params.height)
    elif job.task is Task.UPSCALE:
        assert (width, height) == (job.image.width * job.params.scale,
                                   job.image.height * job.params.scale)  # fmt: skip
    elif job.task is Task.OUTPAINT:
        left, top, right, bottom = job.params.expand
        assert (width, height) == (job.image.width + left + right,
                                   job.image.height + top + bottom)  # fmt: skip
    else:
        assert (width, height) == (job.image.width, job.image.height)
    limits = Limits(max_image_side=max_side)
    if job.task is Task.OUTPAINT and not any(job.params.expand):
        return
    try:
        job.check(limits)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.IMAGE_TOO_LARGE, exc
        assert max(width, height) > max_side
    else:
        assert max(width, height) <= max_side


# --------------------------------------------------------------------------- the offer

model_infos = st.lists(
    st.builds(ModelInfo, name=st.text("abcdef", min_size=1, max_size=4),
              family=st.sampled_from(FAMILIES), kind=st.sampled_from(["base", "lora"]),
              approved=st.booleans()),
    max_size=12, unique_by=lambda m: m.name,
)  # fmt: skip


@given(model_infos, st.data())
def test_lora_choices_are_the_models_family_and_only_approved_present_ones_usable(
    models: list[ModelInfo], data: st.DataObject
) -> None:
    names = [m.name for m in models if m.kind == "base"] + ["missing"]
    chosen = data.draw(st.sampled_from(names))
    offer = Offer(CAPS, Limits(), tuple(models), default_model="")
    choices = offer.lora_choices(chosen)
    base = offer.model(chosen)
    if base is None:
        assert choices == ()
        return
    want = [m for m in models if m.kind == "lora" and m.family == base.family]
    assert [c.name for c in choices] == [m.name for m in want]
    assert [c.usable for c in choices] == [m.approved and m.available for m in want]
    assert set(offer.usable_loras(chosen)) == {m.name for m in want if m.approved and m.available}


def _generate(**params: object) -> Job:
    values: dict[str, object] = {"width": 64, "height": 64, **params}
    return Job("j", Task.GENERATE, JobParams(**values))  # type: ignore[arg-type]


@given(st.integers(1, 400), st.integers(1, 40), st.integers(1, 400))
def test_the_servers_limits_come_from_its_welcome(steps: int, variants: int, most: int) -> None:
    offer = Offer.of(welcome(limits=Limits(max_steps=most, max_variants=most // 10 + 1)))
    job = _generate(steps=steps, variants=variants)
    too_many = steps > most or variants > most // 10 + 1
    if too_many:
        with pytest.raises(HostError) as caught:
            offer.check(job)
        assert caught.value.field in ("params.steps", "params.variants")
        assert "limit" in str(caught.value)
    else:
        offer.check(job)


@pytest.mark.parametrize(
    ("job", "missing", "field"),
    [
        (_generate(tile=Tile.XY), "tile", "params.tile"),
        (_generate(loras=(LoraRef("tiny-lora"),)), "lora", "params.loras"),
        (_generate(variants=2), "variants", "params.variants"),
        (_generate(preview_every=1), "preview", "params.preview_every"),
        (Job("j", Task.UPSCALE, JobParams(), image(64, 64)), "upscale", "task"),
    ],
)
def test_a_capability_the_server_did_not_announce_is_refused(
    job: Job, missing: str, field: str
) -> None:
    offer = Offer.of(welcome(capabilities=tuple(c for c in CAPS if c != missing)))
    with pytest.raises(HostError, match=f"no '{missing}' capability") as caught:
        offer.check(job)
    assert caught.value.field == field
    Offer.of(welcome()).check(job)  # with it, the same job passes


@pytest.mark.parametrize(
    ("params", "text", "field"),
    [
        (dict(model="nope"), "not on this server", "params.model"),
        (dict(model="xl", loras=(LoraRef("tiny-lora"),)), "does not fit the model 'xl'",
         "params.loras[0]"),
        (dict(loras=(LoraRef("tiny-lora"), LoraRef("tiny-secret"))), "not approved",
         "params.loras[1]"),
        (dict(prompt="x" * 4001), "characters", "params.prompt"),
        (dict(width=8192), "max_image_side", "params.width"),
    ],
)  # fmt: skip
def test_models_loras_and_sizes_are_checked_before_sending(
    params: dict[str, object], text: str, field: str
) -> None:
    with pytest.raises(HostError, match=text) as caught:
        Offer.of(welcome()).check(_generate(**params))
    assert caught.value.field == field


def test_a_server_that_is_not_ready_takes_no_jobs() -> None:
    offer = Offer.of(welcome(ready=False, status="torch does not import; reinstall it"))
    with pytest.raises(HostError, match=r"torch does not import; reinstall it.*Connect again"):
        offer.check(_generate())


def test_a_message_over_the_servers_size_limit_is_refused() -> None:
    job = Job("j", Task.REFINE, JobParams(), image(512, 512))  # 768 KiB of pixels
    with pytest.raises(HostError, match="max_message_bytes") as caught:
        Offer.of(welcome(limits=Limits(max_message_bytes=512 * 1024))).check(job)
    assert caught.value.field == "inputs.image"


# --------------------------------------------------------------------------- history

seeds = st.lists(st.integers(0, SEED_MAX), min_size=1, max_size=4)


@given(seeds, st.text(max_size=30), st.floats(0, 1), st.integers(1, 150))
def test_history_records_survive_json(
    seeds: list[int], prompt: str, strength: float, steps: int
) -> None:
    job = Job("j1", Task.GENERATE, JobParams(prompt=prompt, strength=strength, steps=steps,
                                            loras=(LoraRef("l", 0.5),), tile=Tile.X))  # fmt: skip
    result = Result("j1", Task.GENERATE, (image(8, 8),) * len(seeds), tuple(seeds), "tiny-sd")
    record = HistoryRecord.of(job, result, finished=0)
    again = HistoryRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and again.seeds == tuple(seeds)
    assert record.finished == "1970-01-01T00:00:00Z" and record.size == (512, 512)


# --------------------------------------------------------------------------- the state machine


def connected(session: HostSession[str], client_id: str = "c1") -> list[object]:
    return list(session.handle(Connected(welcome(client_id=client_id))))


def test_a_reconnect_fetches_each_waiting_job_once_and_one_welcome_twice_does_nothing() -> None:
    session: HostSession[str] = HostSession()
    first = welcome()
    session.handle(Connected(first))
    assert session.handle(Connected(first)) == []  # a blocking connect, then its event
    session.track(_generate(), "purpose", "world")
    assert session.to_send() == []
    updates = session.handle(Disconnected("dropped"))
    assert updates == [Unlinked("dropped", ("j",))]
    assert "Connect to fetch the result" in session.jobs["j"].message
    again = welcome()
    assert isinstance(session.handle(Connected(again))[0], Linked)
    assert session.to_send() == [Fetch("j")] and session.to_send() == []
    assert session.handle(Connected(again)) == [] and session.to_send() == []
    assert session.jobs["j"].status() == "reconnected; fetching the result"


@pytest.mark.parametrize("code", [ErrorCode.INTERRUPTED, ErrorCode.NOT_FOUND])
def test_a_job_lost_to_a_restart_is_said_plainly(code: ErrorCode) -> None:
    session: HostSession[str] = HostSession()
    connected(session)
    session.track(_generate(), "p", "world")
    session.handle(Disconnected("restart"))
    connected(session)
    (ended,) = session.handle(Error(code, "no job j", id="j"))
    assert isinstance(ended, JobEnded) and ended.record.state is JobState.LOST
    assert ended.record.message == f"the world job j was {LOST}"
    assert not session.busy


def test_not_found_without_a_reconnect_is_what_the_server_said() -> None:
    session: HostSession[str] = HostSession()
    connected(session)
    session.track(_generate(), "p")
    (ended,) = session.handle(Error(ErrorCode.NOT_FOUND, "cancel of an unknown job", id="j"))
    assert isinstance(ended, JobEnded) and ended.record.state is JobState.FAILED
    assert ended.record.message == "cancel of an unknown job [not_found]"
    assert session.handle(Error(ErrorCode.BAD_FRAME, "x")) == [Notice("x [bad_frame]")]


def test_suspended_is_kept_not_ended() -> None:
    session: HostSession[str] = HostSession()
    connected(session)
    session.track(_generate(), "p")
    session.handle(Progress("j", 0, 0, stage="suspended"))
    record = session.jobs["j"]
    assert record.state is JobState.SUSPENDED and not record.state.finished
    assert "after the restart" in record.message
    session.handle(Disconnected("1012"))
    assert "after the restart" in record.message  # the reason it closed, not a failure
    connected(session)
    assert session.to_send() == [Fetch("j")]


def test_nothing_is_tracked_while_disconnected() -> None:
    session: HostSession[str] = HostSession()
    with pytest.raises(HostError, match="Connect"):
        session.track(_generate(), "p")
    assert session.link is Link.DISCONNECTED and not session.jobs


# Any interleaving of a job's possible events, duplicates and drops included.
job_ids = st.sampled_from(["a", "b", "c"])
events = st.one_of(
    st.builds(lambda i, p: Accepted(i, p), job_ids, st.integers(0, 3)),
    st.builds(lambda i, s: Progress(i, s, 4), job_ids, st.integers(0, 4)),
    st.builds(lambda i: Progress(i, 0, 0, stage="suspended"), job_ids),
    st.builds(lambda i: Result(i, Task.GENERATE, (image(8, 8),), (1,), "tiny-sd"), job_ids),
    st.builds(lambda i, c: Error(c, "m", id=i), job_ids, st.sampled_from(list(ErrorCode))),
    st.builds(Cancelled, job_ids),
    st.just(Disconnected("drop")),
    st.just("welcome"),
)


@settings(max_examples=300)
@given(st.lists(events, max_size=30))
def test_every_job_ends_exactly_once_whatever_arrives(stream: list[object]) -> None:
    session: HostSession[str] = HostSession()
    connected(session)
    for job_id in "abc":
        session.track(Job(job_id, Task.GENERATE, JobParams(width=64, height=64)), job_id)
    ended: list[str] = []
    welcomes = 0
    for event in stream:
        if event == "welcome":
            welcomes += 1
            updates = session.handle(Connected(welcome(client_id="c1")))
            fetches = [m.id for m in session.to_send()]
            assert sorted(fetches) == sorted(session.jobs)  # each waiting job, once
        else:
            updates = session.handle(event)
        ended += [u.record.id for u in updates if isinstance(u, JobEnded)]
        for u in updates:
            if isinstance(u, JobEnded):
                assert u.record.state.finished
                assert u.record.message or u.record.result is not None
    assert len(ended) == len(set(ended))  # never twice
    assert set(ended) | set(session.jobs) == {"a", "b", "c"}  # nothing vanished
    assert all(not r.state.finished for r in session.jobs.values())
