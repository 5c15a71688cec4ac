"""Krita Live's decisions without Krita (sfumato_krita/livemodel.py), under hypothesis: what
counts as a change, the live job for the settings, which events are Live's, which result
lands in the live layer, and what a refusal or Live off leaves behind."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from sfumato_krita.jobs import CanvasInput, Mode, Rect
from sfumato_krita.livemodel import LiveState, Look, NodeLook, Shown, settings_key
from sfumato_krita.model import Session, Settings

from sfumato.client import Connected, Disconnected
from sfumato.protocol import (
    Accepted,
    Array,
    Cancelled,
    DType,
    Error,
    ErrorCode,
    Limits,
    ModelInfo,
    Progress,
    Result,
    Task,
    Welcome,
)

CAPS = ("generate", "refine", "inpaint", "cancel", "preview", "variants")
MODELS = (ModelInfo("tiny-sd", "tiny-sd", "base", tiny=True),)


def connected(live: bool, max_side: int = 2048) -> Session:
    session = Session(Settings(prompt="a boat", strength=0.4, steps=8, variants=3))
    caps = (*CAPS, "live") if live else CAPS
    limits = Limits(max_image_side=max_side)
    session.handle(Connected(Welcome("0.1", 1, caps, MODELS, "tiny-sd", limits=limits)))
    return session


def look(version: int, selection: tuple[int, int, int, int] | None = None) -> Look:
    node = NodeLook("{paint}", True, 255, "normal", bytes([version % 256]) * 16)
    return Look((64, 64), selection, (node,), ("a boat",))


def canvas_input(side: int = 64) -> CanvasInput:
    image = Array(DType.UINT8, (side, side, 4), bytes(side * side * 4))
    return CanvasInput(side, side, Rect(0, 0, side, side), image, None)


def result(job_id: str, seed: int = 1) -> Result:
    image = Array(DType.UINT8, (64, 64, 3), bytes([seed % 256]) * (64 * 64 * 3))
    return Result(job_id, Task.REFINE, (image,), (seed,), "tiny-sd")


def test_the_settings_a_live_job_uses_are_part_of_its_look_and_the_mode_is_not() -> None:
    base = Settings(prompt="a", strength=0.5)
    key = settings_key(base)
    for change in ({"prompt": "b"}, {"strength": 0.6}, {"seed": 3}, {"steps": 9},
                   {"negative": "x"}, {"model": "m"}, {"loras": {"s": 1.0}}):  # fmt: skip
        assert settings_key(replace(base, **change)) != key, change
    assert settings_key(replace(base, mode=Mode.UPSCALE, variants=4)) == key


@given(st.booleans(), st.one_of(st.none(), st.integers(0, 2**32 - 1)), st.integers(1, 5))
def test_live_jobs_refine_the_region_at_the_strength_with_one_seed(
    live: bool, seed: int | None, n: int
) -> None:
    session = connected(live)
    session.settings.seed = seed
    state = LiveState(session)
    assert state.start(object(), 0.0) is None
    jobs = []
    for k in range(n):
        state.observe(look(k), look(k - 1), float(k))
        jobs.append(state.job_for(canvas_input()))
    assert all(j is not None for j in jobs)
    seeds = {j.params.seed for j in jobs if j is not None}
    assert seeds == {seed if seed is not None else state.seed}  # the picture does not jump
    for job in jobs:
        assert job is not None and job.task is Task.REFINE
        p = job.params
        assert (p.strength, p.variants, p.preview_every, p.steps) == (0.4, 1, 0, 8)
        assert p.live is live and p.live_key == (state.key if live else None)
    assert state.loop.sent_count == n and state.loop.current == jobs[-1].id  # type: ignore[union-attr]


def test_live_needs_an_image_a_connection_and_a_server_that_refines() -> None:
    state = LiveState(Session())
    assert "open an image first" in (state.start(None, 0.0) or "")
    assert "press Connect" in (state.start(object(), 0.0) or "")
    session = Session()
    session.handle(Connected(Welcome("0.1", 1, ("generate",), MODELS, "tiny-sd")))
    refused = LiveState(session).start(object(), 0.0) or ""
    assert "'refine' capability" in refused and "update the Sfumato server" in refused


def test_a_region_the_server_would_refuse_is_said_and_not_retried_every_poll() -> None:
    state = LiveState(connected(True, max_side=128))
    state.start(object(), 0.0)
    assert state.job_for(canvas_input(256)) is None
    assert "at most 128 a side" in state.message and state.status() == state.message
    assert state.loop.sent_count == 0 and not state.loop.dirty and state.due(10.0) is None
    state.observe(look(1), look(0), 11.0)  # the next change tries again
    assert state.due(11.0 + 1) is not None


@st.composite
def schedules(draw: st.DrawFn) -> list[tuple[str, int]]:
    kinds = st.sampled_from(["look", "send", "result", "cancelled", "error", "other", "off"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 7)), max_size=40))


@settings(max_examples=120)
@given(st.booleans(), schedules())
def test_live_events_never_reach_the_session_and_the_newest_result_wins(
    live: bool, schedule: list[tuple[str, int]]
) -> None:
    state = LiveState(connected(live))
    state.start(object(), 0.0)
    now, last_look, version = 0.0, None, 0
    order: dict[str, int] = {}
    shown: list[int] = []
    for kind, pick in schedule:
        now += 0.1
        flying = state.loop.older | ({state.loop.current} if state.loop.current else set())
        target = sorted(flying)[pick % len(flying)] if flying else None
        if kind == "look":
            version += pick % 2  # the same look again, or a new one
            new = look(version)
            assert state.observe(new, last_look, now) == (state.on and new != last_look)
            last_look = new
        elif kind == "send" and state.on:
            job = state.job_for(canvas_input())
            assert job is not None
            order[job.id] = len(order)
        elif kind == "off":
            running = state.stop()
            assert set(running) <= flying and state.status() == "Live is off"
        elif kind == "other":  # another job's events and connection events pass untouched
            events: list[object] = [
                Accepted("krita-123", 0),
                result("krita-123"),
                Progress("x", 1, 2),
            ]
            assert state.handle(events, now) == (events, None)
        elif target is not None:
            end = {"result": result(target, pick), "cancelled": Cancelled(target, "superseded"),
                   "error": Error(ErrorCode.INTERNAL, "boom", target)}[kind]  # fmt: skip
            on = state.on
            rest, show = state.handle([Progress(target, 1, 2), end], now)
            assert rest == []
            if show is not None:
                assert isinstance(show, Shown) and on and kind == "result"
                assert show.job.id == target and state.shown is show
                assert not shown or order[target] > shown[-1]
                shown.append(order[target])
                assert show.plan.image.shape == (64, 64, 3) and show.plan.alpha is None
            if kind == "error" and on and target == state._last_sent:
                assert "boom" in state.message
            assert not state.loop.ours(target) or target not in state.flights


def test_a_lost_connection_is_not_live_s_to_swallow() -> None:
    state = LiveState(connected(True))
    state.start(object(), 0.0)
    job = state.job_for(canvas_input())
    assert job is not None
    gone = Disconnected("server went away")
    assert state.handle([gone, Accepted(job.id, 0)], 1.0) == ([gone], None)
    assert state.stop() == (job.id,) and not state.on


@pytest.mark.parametrize("live", [True, False])
def test_a_result_after_off_is_not_shown(live: bool) -> None:
    state = LiveState(connected(live))
    state.start(object(), 0.0)
    job = state.job_for(canvas_input())
    assert job is not None
    assert state.stop("bye") == (job.id,) and state.status() == "bye"
    assert state.handle([result(job.id)], 1.0) == ([], None) and state.shown is None
