"""Live jobs are not journaled (issue 12, docs/protocol.md 4.2.7 and 8.1): real ``sfumato
serve`` processes on loopback, a live job and a normal job queued behind a long one. After a
SIGKILL and a restart on the same results folder the normal job is recovered and finishes; the
live job never runs again and a fetch of it is ``not_found``. A graceful stop ends the live job
``interrupted`` (sent, and what a fetch answers after the restart) while the normal job is
``suspended`` and runs after it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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

from .conftest import Peer, finished
from .procs import ServerProcess

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, grace: float) -> str:
    """Every job's start logged (the repeat filter off): the test counts runs in the log."""
    path = tmp_path / f"grace-{grace}.toml"
    path.write_text(f"[server]\nshutdown_grace = {grace}\n[resources]\nlog_repeat_window = 0\n")
    return str(path)


def _queue_behind_a_long_job(peer: Peer) -> tuple[Job, Job, Job]:
    """A long job caught running, then a live job and a normal one queued behind it."""
    long = make_job("generate", prompt="long", width=128, height=128, steps=60, seed=3)
    live = make_job(
        "generate", prompt="edit", width=64, height=64, steps=1, seed=4, live=True, live_key="doc"
    )
    normal = make_job("generate", prompt="kept", width=64, height=64, steps=2, seed=5)
    peer.send(long)
    assert isinstance(peer.until(lambda m: getattr(m, "id", None) == long.id)[-1], Accepted)
    peer.until(lambda m: isinstance(m, Progress) and m.id == long.id and m.step >= 1)
    for job in (live, normal):
        peer.send(job)
        answer = peer.until(lambda m, j=job: getattr(m, "id", None) == j.id)[-1]
        assert isinstance(answer, Accepted), answer
    return long, live, normal


def _started_with_jobs_queued(
    serve: Callable[..., ServerProcess], tmp_path: Path, grace: float
) -> tuple[ServerProcess, Peer, str, tuple[Job, Job, Job]]:
    """A server (``shutdown_grace``), a client, and its long, live and normal jobs (above)."""
    server = serve("--config", _config(tmp_path, grace))
    peer = Peer(server.url)
    client_id = peer.hello().client_id
    return server, peer, client_id, _queue_behind_a_long_job(peer)


def _restarted(
    serve: Callable[..., ServerProcess], tmp_path: Path, client_id: str
) -> tuple[ServerProcess, Peer]:
    """The server started again on the same folders, and the same client connected to it."""
    server = serve("--config", _config(tmp_path, 10))
    peer = Peer(server.url)
    peer.hello(client_id=client_id)
    return server, peer


def _journaled(server: ServerProcess, client_id: str) -> set[str]:
    folder = server.results / owner_key(None, client_id) / JOURNAL
    return {p.stem for p in folder.glob("*.job")}


def _fetch(peer: Peer, job: Job) -> ServerMessage:
    """The terminal answer to a fetch of ``job`` (an ``accepted`` first if it still runs)."""
    peer.send(Fetch(job.id))
    return peer.until(
        lambda m: getattr(m, "id", None) == job.id and isinstance(m, (Result, Error))
    )[-1]


def test_after_sigkill_the_normal_job_is_recovered_and_the_live_job_is_gone(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first, peer, client_id, (long, live, normal) = _started_with_jobs_queued(serve, tmp_path, 10)
    assert _journaled(first, client_id) == {long.id, normal.id}  # the live one never written
    first.kill()
    assert first.started(live.id) == 0

    second, peer = _restarted(serve, tmp_path, client_id)
    for job in (long, normal):
        ended = _fetch(peer, job)
        assert isinstance(ended, Result), ended
        assert second.started(job.id) == 1
    lost = _fetch(peer, live)
    assert isinstance(lost, Error) and lost.code is ErrorCode.NOT_FOUND, lost
    assert second.started(live.id) == 0  # not queued again, so never run
    assert "2 unfinished jobs queued again" in second.log()
    assert _journaled(second, client_id) == set()
    peer.close()


def test_a_graceful_stop_ends_the_live_job_interrupted_and_keeps_the_normal_one(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first, peer, client_id, (long, live, normal) = _started_with_jobs_queued(serve, tmp_path, 0.2)
    first.proc.terminate()
    heard: dict[str, list[ServerMessage]] = {}
    try:
        while True:
            message = peer.recv(timeout=60)
            heard.setdefault(str(getattr(message, "id", "")), []).append(message)
    except ConnectionClosed:  # the server closed the connection (1012) once it had said everything
        pass
    assert first.proc.wait(timeout=60) == 0
    ended = heard[live.id][-1]
    assert isinstance(ended, Error) and ended.code is ErrorCode.INTERRUPTED, heard[live.id]
    assert live.id in ended.message and "live jobs are not kept" in ended.message
    for job in (long, normal):
        stages = [m.stage for m in heard.get(job.id, []) if isinstance(m, Progress)]
        assert stages[-1:] == ["suspended"], heard.get(job.id)

    second, peer = _restarted(serve, tmp_path, client_id)
    again = _fetch(peer, live)  # its end was recorded: the restarted server answers it
    assert isinstance(again, Error) and again.code is ErrorCode.INTERRUPTED, again
    assert isinstance(_fetch(peer, normal), Result)
    assert second.started(live.id) == 0 and second.started(normal.id) == 1
    peer.send(make_job("generate", prompt="x", width=64, height=64, steps=1, id=live.id))
    reused = peer.until(finished(live.id))[-1]  # an interrupted live job's id may be used again
    assert isinstance(reused, Result), reused
    peer.close()
