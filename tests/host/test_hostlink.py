"""The host session over a real connection: a real ``sfumato serve`` on loopback, the tiny
model, real websockets. A result's size is what ``Job.output_size`` said; a dropped
connection's job is fetched once on reconnect and ends once; a graceful restart suspends a
job and the reconnect gets its result; a restart that lost the job says so."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfumato.client import ConnectionFailed, make_job
from sfumato.hostlink import HostLink
from sfumato.hostsession import (
    LOST,
    HostError,
    JobChanged,
    JobEnded,
    JobState,
    Link,
    Unlinked,
    Update,
)
from sfumato.protocol import Fetch

from ..server.procs import ServerProcess


def poll_until(link: HostLink[str], done: Callable[[list[Update]], bool], timeout: float = 120):
    seen: list[Update] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        assert time.monotonic() < deadline, f"nothing ended in time; saw {seen}"
        seen += link.poll()
        time.sleep(0.02)
    return seen


def ends(seen: list[Update]) -> list[JobEnded[str]]:
    return [u for u in seen if isinstance(u, JobEnded)]


def counting_fetches(link: HostLink[str]) -> list[str]:
    """Wrap the link's flush so each fetch the session asks for is counted."""
    sent: list[str] = []
    to_send = link.session.to_send

    def spy() -> list[Fetch]:
        out = to_send()
        sent.extend(m.id for m in out)
        return out

    link.session.to_send = spy  # type: ignore[method-assign]
    return sent


def test_a_job_ends_with_a_result_of_its_output_size(server) -> None:
    link: HostLink[str] = HostLink("test-host")
    link.connect(server.url, None)
    assert link.session.link is Link.CONNECTED and link.session.offer.has("generate")
    job = make_job("generate", prompt="moss", seed=3, width=64, height=96, steps=2)
    link.submit(job, "the purpose", "world")
    seen = poll_until(link, lambda s: bool(ends(s)))
    (ended,) = ends(seen)
    record = ended.record
    assert record.state is JobState.DONE and record.purpose == "the purpose"
    assert record.result is not None
    assert [(a.width, a.height) for a in record.result.images] == [job.output_size()]
    assert any(isinstance(u, JobChanged) for u in seen) and not link.session.busy
    with pytest.raises(HostError, match="over this server's limit"):
        steps = link.session.offer.limits.max_steps + 1
        link.submit(make_job("generate", width=64, height=64, steps=steps), "x")
    assert not link.session.busy  # a refused job is not tracked
    link.close()


def test_a_dropped_connection_is_fetched_once_and_ends_once(server) -> None:
    link: HostLink[str] = HostLink("test-host")
    link.connect(server.url, None)
    fetched = counting_fetches(link)
    client_id = link.session.client_id
    job = make_job("generate", prompt="moss", seed=4, width=64, height=64, steps=12)
    link.submit(job, "p")
    poll_until(link, lambda s: any(
        isinstance(u, JobChanged) and u.record.state is JobState.RUNNING for u in s))  # fmt: skip
    assert link.client is not None and link.client._ws is not None
    link.client._ws.socket.shutdown(socket.SHUT_RDWR)  # a network drop, no goodbye
    seen = poll_until(link, lambda s: any(isinstance(u, Unlinked) for u in s), timeout=30)
    assert link.session.busy and job.id in link.session.jobs
    link.connect(server.url, None)
    assert link.session.client_id == client_id
    seen = poll_until(link, lambda s: bool(ends(s)))
    for _ in range(20):  # a second copy (live and stored) must not end it again
        seen += link.poll()
        time.sleep(0.05)
    (ended,) = ends(seen)
    assert ended.record.state is JobState.DONE and ended.record.result is not None
    assert fetched == [job.id]
    link.close()


def test_connect_to_nothing_says_how(server) -> None:
    link: HostLink[str] = HostLink("test-host")
    with pytest.raises(ConnectionFailed, match="sfumato serve"):
        link.connect("ws://127.0.0.1:9", None)
    assert link.session.link is Link.DISCONNECTED
    link.connect_async("ws://127.0.0.1:9", None)
    seen = poll_until(link, lambda s: any(isinstance(u, Unlinked) for u in s), timeout=30)
    assert "sfumato serve" in next(u for u in seen if isinstance(u, Unlinked)).reason


def _grace(tmp_path: Path, grace: float) -> str:
    path = tmp_path / f"grace-{grace}.toml"
    path.write_text(f"[server]\nshutdown_grace = {grace}\n")
    return str(path)


@pytest.mark.slow
def test_a_graceful_restart_suspends_the_job_and_the_reconnect_gets_its_result(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = serve("--config", _grace(tmp_path, 0))
    link: HostLink[str] = HostLink("test-host")
    link.connect(first.url, None)
    job = make_job("generate", prompt="moss", seed=5, width=64, height=64, steps=40)
    link.submit(job, "p", "texture")
    poll_until(link, lambda s: any(
        isinstance(u, JobChanged) and u.record.state is JobState.RUNNING for u in s))  # fmt: skip
    first.term()
    seen = poll_until(link, lambda s: any(isinstance(u, Unlinked) for u in s), timeout=60)
    record = link.session.jobs[job.id]
    assert record.state is JobState.SUSPENDED and "after the restart" in record.message
    assert not ends(seen)
    port = first.url.rsplit(":", 1)[1]
    second = serve("--port", port)
    link.connect(second.url, None)
    (ended,) = ends(poll_until(link, lambda s: bool(ends(s)), timeout=300))
    assert ended.record.state is JobState.DONE and ended.record.result is not None
    assert ended.record.result.seeds == (5,)
    link.close()


@pytest.mark.slow
def test_a_restart_that_lost_the_job_says_so(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Killed, then started on an empty results folder: the fetch answers not_found, which
    after a reconnect means the job was lost to the restart."""
    first = serve()
    link: HostLink[str] = HostLink("test-host")
    link.connect(first.url, None)
    job = make_job("generate", prompt="moss", seed=6, width=64, height=64, steps=40)
    link.submit(job, "p", "world")
    poll_until(link, lambda s: any(
        isinstance(u, JobChanged) and u.record.state is JobState.RUNNING for u in s))  # fmt: skip
    first.kill()
    poll_until(link, lambda s: any(isinstance(u, Unlinked) for u in s), timeout=60)
    second = serve("--port", first.url.rsplit(":", 1)[1], results=tmp_path / "other")
    link.connect(second.url, None)
    (ended,) = ends(poll_until(link, lambda s: bool(ends(s)), timeout=120))
    assert ended.record.state is JobState.LOST
    assert ended.record.message == f"the world job {job.id} was {LOST}"
    link.close()
