"""Accepted means kept: real ``sfumato serve`` processes killed with SIGKILL or stopped with
SIGTERM while a job runs and others wait, then started again on the same results folder. The
client reconnects with its client_id and fetches every job: each one ends with its result
(run exactly once more) or ``interrupted`` — never ``not_found``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from sfumato.client import make_job
from sfumato.protocol import (
    Accepted,
    Error,
    ErrorCode,
    Fetch,
    Job,
    Progress,
    Result,
    ServerMessage,
)
from sfumato.service.journal import JOURNAL
from sfumato.service.store import owner_key

from .conftest import Peer, finished, rgb
from .procs import ServerProcess

pytestmark = pytest.mark.slow


def _jobs() -> tuple[Job, list[Job]]:
    """One job long enough to be caught running, and queued ones: one with input arrays."""
    long = make_job("generate", prompt="long", width=128, height=128, steps=60, seed=3)
    image = np.concatenate([rgb(64, 64, 7), np.full((64, 64, 1), 255, np.uint8)], axis=2)
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[16:48, 16:48] = 255
    inpaint = make_job("inpaint", image, mask, prompt="patch", steps=3, seed=11)
    small = make_job("generate", prompt="small", width=64, height=64, steps=2, seed=5)
    return long, [inpaint, small]


def _submit_and_catch_running(peer: Peer, long: Job, queued: list[Job]) -> None:
    for job in (long, *queued):
        peer.send(job)
        assert isinstance(peer.until(lambda m, j=job: getattr(m, "id", None) == j.id)[-1], Accepted)
    peer.until(lambda m: isinstance(m, Progress) and m.id == long.id and m.step >= 1)


def _fetch_all(peer: Peer, jobs: list[Job]) -> dict[str, ServerMessage]:
    """Fetch each job; wait until each has ended. Returns the terminal event per job."""
    for job in jobs:
        peer.send(Fetch(job.id))
    ended: dict[str, ServerMessage] = {}
    while len(ended) < len(jobs):
        message = peer.recv(timeout=180)
        job_id = getattr(message, "id", None)
        assert not (isinstance(message, Error) and message.code is ErrorCode.NOT_FOUND), message
        if isinstance(message, (Result, Error)) and job_id not in ended:
            ended[str(job_id)] = message
    return ended


def _stored(server: ServerProcess, client_id: str, job: Job) -> bool:
    return (server.results / owner_key(None, client_id) / job.id / "result.json").is_file()


def _same_pixels(peer: Peer, job: Job, result: Result) -> None:
    """The job run afresh under a new id gives the same images: the journal kept its inputs."""
    again = replace(job, id=job.id + "-again")
    peer.send(again)
    fresh = peer.until(finished(again.id))[-1]
    assert isinstance(fresh, Result)
    assert [a.data for a in fresh.images] == [a.data for a in result.images]


def test_after_sigkill_running_and_queued_jobs_run_once_more_or_are_interrupted(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = serve("--config", _config(tmp_path))
    peer = Peer(first.url)
    client_id = peer.hello().client_id
    long, queued = _jobs()
    torn = make_job("generate", prompt="torn", width=64, height=64, steps=2, seed=9)
    _submit_and_catch_running(peer, long, [*queued, torn])
    first.kill()
    entry = first.results / owner_key(None, client_id) / JOURNAL / f"{torn.id}.job"
    entry.write_bytes(entry.read_bytes()[:-3])  # the disk kept a torn entry
    done_before = {job.id: _stored(first, client_id, job) for job in (long, *queued)}
    assert first.started(long.id) == 1

    second = serve("--config", _config(tmp_path))
    peer = Peer(second.url)
    peer.hello(client_id=client_id)
    ended = _fetch_all(peer, [long, *queued, torn])
    for job in (long, *queued):
        assert isinstance(ended[job.id], Result), ended[job.id]
        assert second.started(job.id) == (0 if done_before[job.id] else 1)  # no duplicates
    interrupted = ended[torn.id]
    assert isinstance(interrupted, Error) and interrupted.code is ErrorCode.INTERRUPTED
    assert torn.id in interrupted.message and second.started(torn.id) == 0
    inpaint = queued[0]
    _same_pixels(peer, inpaint, ended[inpaint.id])  # type: ignore[arg-type]
    peer.send(Fetch(torn.id))  # and it stays answerable
    again = peer.until(lambda m: getattr(m, "id", None) == torn.id)[-1]
    assert isinstance(again, Error) and again.code is ErrorCode.INTERRUPTED
    peer.close()


def _config(tmp_path: Path, grace: float = 10) -> str:
    """Every job's start logged (the log's repeat filter off): the tests count runs there."""
    path = tmp_path / f"grace-{grace}.toml"
    path.write_text(f"[server]\nshutdown_grace = {grace}\n[resources]\nlog_repeat_window = 0\n")
    return str(path)


def _until_closed(peer: Peer) -> tuple[list[ServerMessage], int | None]:
    seen: list[ServerMessage] = []
    try:
        while True:
            seen.append(peer.recv(timeout=120))
    except ConnectionClosed as closed:
        return seen, closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("grace", [0, 120])
def test_sigterm_finishes_or_suspends_the_running_job_and_keeps_the_queue(
    serve: Callable[..., ServerProcess], tmp_path: Path, grace: float
) -> None:
    first = serve("--config", _config(tmp_path, grace))
    peer = Peer(first.url)
    client_id = peer.hello().client_id
    long, queued = _jobs()
    _submit_and_catch_running(peer, long, queued)
    first.proc.send_signal(15)
    seen, code = _until_closed(peer)
    assert first.proc.wait(timeout=120) == 0 and code == 1012
    for job in (long, *queued):
        events = [m for m in seen if getattr(m, "id", None) == job.id and not (
            isinstance(m, Progress) and m.stage != "suspended")]  # fmt: skip
        # Exactly one event says how the stop left each job: its result, or "suspended".
        assert len(events) == 1, (job.id, events)
    (long_end,) = [m for m in seen if getattr(m, "id", None) == long.id and (
        isinstance(m, Result) or getattr(m, "stage", "") == "suspended")]  # fmt: skip
    assert isinstance(long_end, Result) == (grace > 0)  # a long grace lets it finish
    assert not any(isinstance(m, Error) for m in seen)

    second = serve("--config", _config(tmp_path))
    peer = Peer(second.url)
    peer.hello(client_id=client_id)
    ended = _fetch_all(peer, [long, *queued])
    assert all(isinstance(ended[job.id], Result) for job in (long, *queued)), ended
    assert second.started(long.id) == (0 if grace > 0 else 1)
    assert all(second.started(job.id) == 1 for job in queued)
    peer.close()
