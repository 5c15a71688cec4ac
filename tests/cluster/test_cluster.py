"""``serve --ray`` end to end: real websockets into a front door, jobs on two Ray replicas of
the tiny models, results written by the front door. Every test shares the session's cluster
and server (conftest.py); each leaves both replicas up for the next, but the last two, which
kill them (they run in file order: the kill test leaves one restarting, the last leaves none)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sfumato.protocol import (
    Cancel,
    Cancelled,
    Error,
    ErrorCode,
    Job,
    JobParams,
    LoraRef,
    Progress,
    Result,
    ServerMessage,
    Task,
)
from tests.server.conftest import Peer, finished
from tests.server.procs import ServerProcess

from .conftest import infos, replicas

pytestmark = pytest.mark.slow


def small(job_id: str, seed: int, model: str | None = None, steps: int = 1, side: int = 64) -> Job:
    params = JobParams(prompt="p", width=side, height=side, steps=steps, seed=seed, model=model)
    return Job(job_id, Task.GENERATE, params)


def run_one(peer: Peer, job: Job) -> list[ServerMessage]:
    peer.send(job)
    return peer.until(finished(job.id))


def test_four_clients_ten_jobs_each_every_result_arrives_exactly_once(
    cluster_server: ServerProcess,
) -> None:
    before = {info.name: set(info.finished) for info in infos()}
    peers = [Peer(cluster_server.url) for _ in range(4)]
    for n, peer in enumerate(peers):
        peer.hello(client_id=f"client-{n}")
    seen: dict[int, list[ServerMessage]] = {}

    def client(n: int) -> None:
        peer = peers[n]
        ids = [f"c{n}-j{k}" for k in range(10)]
        for k, job_id in enumerate(ids):
            peer.send(small(job_id, seed=100 * n + k))
        got: list[ServerMessage] = []
        ended: set[str] = set()
        while ended != set(ids):
            message = peer.recv(120)
            got.append(message)
            if isinstance(message, (Result, Error, Cancelled)):
                ended.add(str(message.id))
        seen[n] = got

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for peer in peers:
        peer.close()
    assert sorted(seen) == [0, 1, 2, 3]
    for n, got in seen.items():
        ends = [m for m in got if isinstance(m, (Result, Error, Cancelled))]
        assert all(isinstance(m, Result) for m in ends), [
            m for m in ends if not isinstance(m, Result)
        ]
        assert Counter(m.id for m in ends) == Counter(f"c{n}-j{k}" for k in range(10))
        for m in ends:
            assert isinstance(m, Result)
            assert m.images[0].shape == (64, 64, 3) and m.seeds[0] // 100 == n
    # The replicas agree: each of the 40 jobs finished on exactly one of them, and both worked.
    ran = {info.name: set(info.finished) - before.get(info.name, set()) for info in infos()}
    every = [job_id for ids in ran.values() for job_id in ids]
    assert sorted(every) == sorted(f"c{n}-j{k}" for n in range(4) for k in range(10))
    assert all(ids for ids in ran.values()), ran
    # Stored by the front door, as in process: one folder per job with its PNG and JSON.
    stored = [p for p in cluster_server.results.glob("*/c*-j*") if (p / "result.json").exists()]
    assert len(stored) == 40


def test_the_front_door_never_loads_torch(cluster_server: ServerProcess) -> None:
    maps = Path(f"/proc/{cluster_server.proc.pid}/maps").read_text()
    assert "libtorch" not in maps and "torch/lib" not in maps


def test_the_replicas_run_at_normal_priority_and_the_front_door_says_so_otherwise(
    cluster_server: ServerProcess,
) -> None:
    """Ray starts its workers at niceness 15; a node started with RAY_worker_niceness=0 (as
    this cluster is, and as serve --ray's own local cluster is) runs them at 0, and the front
    door logs a warning with the fix for any replica that is not."""
    assert [info.niceness for info in infos()] == [0, 0]
    assert "niceness" not in cluster_server.log()


def test_a_job_goes_to_the_replica_that_has_its_model(cluster_server: ServerProcess) -> None:
    before = {info.name: len(info.loads) for info in infos()}
    peer = Peer(cluster_server.url)
    peer.hello(client_id="affinity")
    models = ["tiny-sd", "tiny-sdxl"] * 3
    for n, model in enumerate(models):  # one at a time: both replicas are free each time
        ends = [
            m for m in run_one(peer, small(f"aff-{n}", n, model)) if not isinstance(m, Progress)
        ]
        assert isinstance(ends[-1], Result) and ends[-1].model == model
    peer.close()
    now = infos()
    new_loads = [load for info in now for load in info.loads[before.get(info.name, 0) :]]
    # Without affinity the lowest free replica would switch models for every job (six loads).
    assert new_loads.count("tiny-sdxl") == 1 and new_loads.count("tiny-sd") <= 1, new_loads
    where = {job: info.name for info in now for job in info.finished if job.startswith("aff-")}
    assert len({where[f"aff-{n}"] for n in (1, 3, 5)}) == 1  # every tiny-sdxl job on one
    assert len({where[f"aff-{n}"] for n in (2, 4)}) == 1  # tiny-sd's after that on the other
    assert where["aff-1"] != where["aff-2"]


LATE_ENTRY = """
[models."late-style"]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
license = "House licence 7"
approved = true
"""


def test_an_entry_added_while_serving_reaches_every_replica(
    cluster_server: ServerProcess, cluster_registry: Path
) -> None:
    """The front door reads its registry file again when it changes (registry_watch.py), and
    the replicas take that registry before their next job: a LoRA entry added while the
    cluster serves is usable on both replicas, at once, without a restart."""
    first = Peer(cluster_server.url)
    assert "late-style" not in {m.name for m in first.hello(client_id="late-entry").models}
    ends = [run_one(first, small(f"before-late-{n}", n, "tiny-sd"))[-1] for n in range(2)]
    assert all(isinstance(end, Result) for end in ends), ends  # the replicas are up, made
    first.close()  # with the registry as it was
    tmp = cluster_registry.with_name("registry.edit")
    tmp.write_text(cluster_registry.read_text() + LATE_ENTRY)
    os.replace(tmp, cluster_registry)  # an editor's save (or `sfumato train-lora`'s entry)
    peer = Peer(cluster_server.url)
    assert "late-style" in {m.name for m in peer.hello(client_id="late-entry").models}
    lora = (LoraRef("late-style", 0.8),)
    jobs = []
    for n in range(4):
        job = small(f"late-{n}", n, "tiny-sd", steps=6, side=128)
        jobs.append(replace(job, params=replace(job.params, loras=lora)))
    for job in jobs:  # at once: both replicas run some of them
        peer.send(job)
    ends = {}
    while len(ends) < len(jobs):
        message = peer.recv(120)
        if isinstance(message, (Result, Error, Cancelled)):
            ends[message.id] = message
    assert all(isinstance(end, Result) for end in ends.values()), ends
    where = {job: info.name for info in infos() for job in info.finished if job.startswith("late-")}
    assert len(set(where.values())) == 2, f"one replica ran them all: {where}"
    peer.close()


def long_job_running(peer: Peer, job_id: str) -> tuple[Job, int]:
    """Send a 150-step job and return once it is past its second step on a replica."""
    job = small(job_id, 7, steps=150, side=128)
    peer.send(job)
    while True:
        message = peer.recv(120)
        assert not isinstance(message, (Result, Error, Cancelled)), message
        if isinstance(message, Progress) and message.step >= 2:
            return job, message.total


def test_a_cancel_reaches_the_running_replica(cluster_server: ServerProcess) -> None:
    peer = Peer(cluster_server.url)
    peer.hello(client_id="cancel")
    _, total = long_job_running(peer, "cancel-1")
    peer.send(Cancel("cancel-1"))
    got = peer.until(finished("cancel-1"))
    assert isinstance(got[-1], Cancelled)
    steps = [m.step for m in got if isinstance(m, Progress)]
    assert not steps or max(steps) < total  # it stopped, it did not run out
    assert all("cancel-1" not in info.finished and info.running is None for info in infos())
    # The replica that was stopped takes the next job as usual.
    assert isinstance(run_one(peer, small("cancel-2", 1))[-1], Result)
    peer.close()


def test_a_replica_killed_mid_job_the_job_finishes_on_the_other_once(
    cluster_server: ServerProcess,
) -> None:
    import ray

    peer = Peer(cluster_server.url)
    peer.hello(client_id="kill")
    long_job_running(peer, "kill-1")
    running = [(a, i) for a, i in zip(replicas(), infos(), strict=True) if i.running == "kill-1"]
    assert len(running) == 1, [i.running for i in infos()]
    victim = running[0][0]
    ray.kill(victim, no_restart=False)  # Ray restarts it; the front door runs the job again
    got = peer.until(finished("kill-1"), timeout=180)
    assert isinstance(got[-1], Result), got[-1]
    # Nothing is delivered twice: the next job's result comes with no second end of kill-1.
    after = run_one(peer, small("kill-2", 2))
    ends = [m for m in got + after if isinstance(m, (Result, Error, Cancelled))]
    assert [m.id for m in ends] == ["kill-1", "kill-2"]
    assert "job kill-1: runs again on another replica" in cluster_server.log()
    # It finished on the other replica (the victim, restarted, remembers nothing of it).
    other = [a for a in replicas() if a != victim]
    assert other and all(
        "kill-1" in info.finished for info in ray.get([a.info.remote() for a in other])
    )
    peer.close()


def running_on(
    job_id: str, timeout: float = 180, *, skip: Any = None, peer: Peer | None = None
) -> object:
    """The replica actor running ``job_id`` now (waits for a restarting one to answer).
    ``skip``: a replica killed for good, not asked again (a call on it may hang while Ray
    frees its name). ``peer``: the job's client, read meanwhile (its keepalive stays
    answered) and checked: a job that ends before it is seen running fails at once."""
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for actor in replicas():
            if skip is not None and actor._actor_id == skip._actor_id:
                continue
            try:
                call = actor.info.options(concurrency_group="control").remote()
                info = ray.get(call, timeout=5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                continue  # killed for good, or restarting: ask again
            if info.running == job_id:
                return actor
        if peer is not None:
            try:
                message = peer.recv(timeout=0.05)
            except TimeoutError:
                continue
            ended = getattr(message, "id", None) == job_id and not isinstance(message, Progress)
            assert not ended, f"{job_id} ended before it was seen running again: {message}"
        else:
            time.sleep(0.05)
    raise AssertionError(f"{job_id} did not start on a replica")


def test_a_job_whose_replica_dies_twice_ends_replica_lost_and_then_no_replica_is_left(
    cluster_server: ServerProcess,
) -> None:
    """Last: it kills both replicas for good (no_restart), so Ray cannot bring them back."""
    import ray

    peer = Peer(cluster_server.url)
    peer.hello(client_id="lost")
    long_job_running(peer, "lost-1")
    first = running_on("lost-1")
    ray.kill(first, no_restart=True)
    second = running_on("lost-1", skip=first, peer=peer)  # the run again, on the other one
    assert second != first
    ray.kill(second, no_restart=True)
    got = peer.until(finished("lost-1"), timeout=180)
    assert isinstance(got[-1], Error) and got[-1].code is ErrorCode.REPLICA_LOST, got[-1]
    assert "died" in got[-1].message and "submit it again" in got[-1].message
    assert [m for m in got if isinstance(m, Result)] == []
    # Both down for good: a new job is not left waiting, it hears why at once.
    after = run_one(peer, small("lost-2", 3))[-1]
    assert isinstance(after, Error) and after.code is ErrorCode.ENGINE_UNAVAILABLE, after
    assert "down" in after.message and "restart the server" in after.message
    peer.close()
