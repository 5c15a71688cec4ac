"""The live loop's decisions (sfumato.hostlive) on clocks the tests choose: debounce, the
newest job only, newest result wins, off means off — over edit timings hypothesis picks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.hostlive import DEBOUNCE, LiveLoop, Send, live_job
from sfumato.hostoffer import Offer
from sfumato.protocol import Job, JobParams, Task

TICK = 0.05  # a host timer's period in these simulations


def simulate(loop: LiveLoop, edits: list[float], job_time: float) -> list[tuple[float, Send]]:
    """Edits at ``edits`` (sorted times), a timer every TICK, each job ending ``job_time``
    after it was sent unless a newer one superseded it first. Returns the sends."""
    sends: list[tuple[float, Send]] = []
    ends: dict[str, float] = {}
    now, n = 0.0, 0
    while now <= (edits[-1] if edits else 0.0) + job_time + 2.0:
        while n < len(edits) and edits[n] <= now:
            loop.changed(now)
            n += 1
        for job_id, at in list(ends.items()):
            if at <= now:
                del ends[job_id]
                loop.ended(job_id)
        send = loop.due(now)
        if send is not None:
            for job_id in send.cancel:
                ends[job_id] = now  # the cancel lands at once
            job_id = f"j{len(sends)}"
            loop.sent(job_id)
            ends[job_id] = now + job_time
            sends.append((now, send))
        now += TICK
    return sends


times = st.lists(st.floats(0.001, 3.0), max_size=30).map(sorted)  # after live went on


@settings(max_examples=100, deadline=None)
@given(times, st.floats(0.0, 1.0), st.booleans())
def test_sends_are_a_quiet_period_apart_and_the_last_change_always_goes(
    edits: list[float], job_time: float, supersedes: bool
) -> None:
    loop = LiveLoop()
    loop.start(0.0, supersedes=supersedes)
    sends = simulate(loop, edits, job_time)
    assert sends and sends[0][0] == 0.0, "turning live on sends the scene as it is at once"
    at = [t for t, _ in sends]
    assert all(b - a >= DEBOUNCE - 1e-9 for a, b in itertools.pairwise(at))
    if (
        edits
    ):  # the last change is sent after it, within the debounce (+ a tick to see it, one to act)
        assert edits[-1] <= at[-1] <= edits[-1] + DEBOUNCE + 2 * TICK + 1e-9
    assert not loop.dirty and loop.sent_count == len(sends)
    for _, send in sends:  # a superseding server needs no cancel; an older one, the current
        assert send.cancel == () if supersedes else len(send.cancel) <= 1


def test_a_burst_of_twenty_changes_in_a_second_sends_one_job() -> None:
    loop = LiveLoop()
    loop.start(0.0, supersedes=True)
    loop.sent("first")  # the look when live went on
    loop.ended("first")
    sends = simulate(loop, [0.5 + k * 0.05 for k in range(20)], job_time=0.1)
    assert len(sends) == 1 and sends[0][0] >= 0.5 + 19 * 0.05 + DEBOUNCE - 1e-9


def test_an_older_server_gets_a_cancel_for_the_job_in_flight() -> None:
    loop = LiveLoop()
    loop.start(0.0)
    assert loop.due(0.0) == Send()
    loop.sent("a")
    loop.changed(0.1)
    assert loop.due(0.2) is None  # not quiet yet
    assert loop.due(0.1 + 2 * DEBOUNCE) == Send(cancel=("a",))
    loop.sent("b")
    assert loop.current == "b" and loop.older == {"a"}


@given(st.permutations(range(5)))
def test_a_result_is_shown_only_when_newer_than_the_last_shown(arrival: list[int]) -> None:
    loop = LiveLoop(debounce=0.0)
    loop.start(0.0, supersedes=True)
    for n in range(5):
        assert loop.due(float(n)) is not None
        loop.sent(f"j{n}")
        loop.changed(float(n))
    shown = [n for n in arrival if loop.show(f"j{n}")]
    assert (
        shown == sorted(shown)
        and shown[0] == arrival[0]
        and shown[-1] == max(arrival[: arrival.index(4) + 1])
    )
    assert not loop.show("someone else's job") and not loop.ours("someone else's job")


def test_off_names_what_runs_then_nothing_is_sent_or_shown() -> None:
    loop = LiveLoop()
    loop.start(0.0, supersedes=True)
    loop.sent("a")
    loop.changed(0.0)
    loop.sent("b")
    assert set(loop.stop()) == {"a", "b"}
    loop.changed(1.0)
    assert loop.due(10.0) is None and not loop.dirty
    assert not loop.show("b") and not loop.show("a")
    loop.start(20.0)
    assert loop.due(20.0) == Send()  # on again: the scene as it is, at once


def test_a_skipped_change_is_not_retried_until_the_next() -> None:
    loop = LiveLoop()
    loop.start(0.0)
    assert loop.due(0.0) is not None
    loop.skipped()  # e.g. no camera: the user was told
    assert loop.due(5.0) is None
    loop.changed(5.0)
    assert loop.due(5.0 + DEBOUNCE) == Send()


def test_the_builder_marks_live_only_where_the_server_offers_it() -> None:
    job = Job("j1", Task.GENERATE, JobParams(prompt="x", preview_every=2))
    plain = live_job(job, "blender:Scene", Offer(capabilities=("generate",)))
    live = live_job(job, "blender:Scene", Offer(capabilities=("generate", "live")))
    assert (plain.params.live, plain.params.live_key, plain.params.preview_every) == (
        False,
        None,
        0,
    )
    assert (live.params.live, live.params.live_key, live.id) == (True, "blender:Scene", "j1")
    with pytest.raises(ValueError, match="live key"):
        live_job(job, "", Offer())
    with pytest.raises(ValueError, match="debounce"):
        LiveLoop(debounce=-1)
