"""Cancel a queued job and a running one."""

from __future__ import annotations

from sfumato.client import make_job
from sfumato.protocol import Accepted, Cancel, Cancelled, Error, ErrorCode, Progress, Result

from .conftest import Peer, finished


def test_cancel_running_job_stops_within_a_step(peer: Peer) -> None:
    # Long enough (150 steps of 128²) that the cancel always lands while it runs.
    job = make_job("generate", prompt="x", width=128, height=128, steps=150, seed=1)
    peer.send(job)
    seen = peer.until(lambda m: isinstance(m, Progress) and m.stage == "denoise" and m.step >= 2)
    peer.send(Cancel(job.id))
    rest = peer.until(finished(job.id))
    assert isinstance(rest[-1], Cancelled)
    last_step = max(m.step for m in seen + rest if isinstance(m, Progress))
    assert last_step < 150
    assert not any(isinstance(m, Result) for m in rest)


def test_cancel_queued_job_never_runs(peer: Peer) -> None:
    running = make_job("generate", prompt="x", width=64, height=64, steps=30, seed=1)
    queued = make_job("generate", prompt="y", width=64, height=64, steps=3, seed=1)
    peer.send(running)
    peer.send(queued)
    accepted = peer.until(lambda m: isinstance(m, Accepted) and m.id == queued.id)
    assert accepted[-1].position >= 1
    peer.send(Cancel(queued.id))
    messages = peer.until(finished(running.id))
    assert any(isinstance(m, Cancelled) and m.id == queued.id for m in messages)
    assert not any(
        getattr(m, "id", None) == queued.id and isinstance(m, Progress) for m in messages
    )
    assert isinstance(messages[-1], Result)


def test_cancel_unknown_job_is_not_found(peer: Peer) -> None:
    peer.send(Cancel("no-such-job"))
    error = peer.recv()
    assert (
        isinstance(error, Error) and error.code is ErrorCode.NOT_FOUND and error.id == "no-such-job"
    )
