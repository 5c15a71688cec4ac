"""Issue 12 over a real socket on the session's ``sfumato serve``: live jobs supersede only
their own identity's and key's, inputs by hash (hit, miss → resent, no job fails), inputs by
shared memory (the same result as bytes; no segment left, even when the client is SIGKILLed)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sfumato import shmem
from sfumato.client import Client, make_job
from sfumato.protocol import (
    SUPERSEDED,
    Accepted,
    Cancelled,
    DType,
    Error,
    ErrorCode,
    Fetch,
    Job,
    Placed,
    Progress,
    Result,
    encode,
)
from sfumato.protocol.refs import hash_ref

from .conftest import Peer, finished, rgb
from .counting import Counting

SMALL = {"width": 64, "height": 64}


def live(key: str | None, steps: int = 2, **params: Any) -> Job:
    extra = {"live": True, "live_key": key} if key is not None else {}
    return make_job("generate", prompt="p", seed=1, steps=steps, **SMALL, **extra, **params)


def ends(peer: Peer, ids: set[str]) -> dict[str, Any]:
    """The terminal event of each job in ``ids``, in whatever order they come."""
    out: dict[str, Any] = {}
    while ids - out.keys():
        message = peer.recv(120)
        if message.TYPE in ("result", "error", "cancelled") and message.id in ids:
            out[message.id] = message
    return out


def test_live_jobs_supersede_their_own_identity_and_key_only(server: Any) -> None:
    a, b = Peer(server.url), Peer(server.url)
    a.hello(client_id=uuid.uuid4().hex)
    b.hello(client_id=uuid.uuid4().hex)
    try:
        first = live("doc", steps=150)  # long: it is running when the next comes
        a.send(first)
        early = a.until(lambda m: isinstance(m, Progress) and m.id == first.id and m.step >= 1)
        theirs = live("doc")  # another identity, same key
        b.send(theirs)
        b.until(lambda m: isinstance(m, Accepted))
        plain, other_key = live(None), live("other")
        a.send(plain)
        a.send(other_key)
        second, third = live("doc"), live("doc")
        a.send(second)  # supersedes the running one
        a.send(third)  # supersedes the queued second
        seen = a.until(lambda m: isinstance(m, Accepted) and m.id == third.id)
        order = [(m.TYPE, m.id) for m in seen if m.TYPE in ("accepted", "cancelled")]
        assert order.index(("cancelled", second.id)) < order.index(("accepted", third.id))
        mine = {m.id: m for m in seen if m.TYPE in ("result", "error", "cancelled")}
        mine |= ends(a, {first.id, second.id, third.id, plain.id, other_key.id} - mine.keys())
        assert mine[first.id] == Cancelled(first.id, SUPERSEDED)
        assert mine[second.id] == Cancelled(second.id, SUPERSEDED)
        for job in (third, plain, other_key):
            assert isinstance(mine[job.id], Result), mine[job.id]
        assert isinstance(ends(b, {theirs.id})[theirs.id], Result)
        last = max(m.step for m in early + seen if isinstance(m, Progress) and m.id == first.id)
        assert last < 150  # interrupted, not run to the end
        a.send(Fetch(second.id))  # the reason is kept with the end
        assert a.until(lambda m: getattr(m, "id", None) == second.id)[-1] == Cancelled(
            second.id, SUPERSEDED
        )
    finally:
        a.close()
        b.close()


def test_a_burst_of_live_edits_meets_no_queue_limit(server: Any) -> None:
    with Client(server.url, client_id=uuid.uuid4().hex) as client:
        limit = client.welcome.limits.max_queued_jobs if client.welcome else 8
        burst = [live("burst", steps=3) for _ in range(limit * 2)]
        for job in burst:
            client.submit(job)
        last = client.wait(burst[-1].id, timeout=120)
        assert isinstance(last, Result)
        events = client.events()
        ended = {e.id: e for e in events if isinstance(e, (Result, Error, Cancelled))}
        assert not any(isinstance(e, Error) for e in ended.values()), ended
        results = [j.id for j in burst[:-1] if isinstance(ended.get(j.id), Result)]
        assert len(results) <= 1  # at most the one already running when the burst came


def refine(image: np.ndarray, job_id: str | None = None) -> Job:
    return make_job("refine", image, id=job_id, prompt="p", seed=3, steps=2, strength=0.5)


def test_inputs_by_hash_hit_and_miss_resend(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shmem, "AVAILABLE", False)  # this test is about the socket path
    image = rgb(64, 64, seed=5)
    with Counting(server.url, client_id=uuid.uuid4().hex) as client:
        assert client.welcome is not None and client.welcome.input_cache > 0
        assert "input_ref" in client.welcome.capabilities
        first = client.run(refine(image), timeout=120)
        again = client.run(refine(image), timeout=120)
        assert client.sent[-1] < 1024 < client.sent[-2]  # the second sent the hash only
        assert np.array_equal(first.images[0].to_numpy(), again.images[0].to_numpy())
        # As after an eviction: the client believes the server keeps an array it does not.
        other = rgb(64, 64, seed=6)
        assert client._refs is not None
        digest = hashlib.sha256(other.tobytes()).hexdigest()
        client._refs._known[digest, DType.UINT8, (64, 64, 3)] = None
        count = len(client.sent)
        resent = client.run(refine(other), timeout=120)  # no error reaches the host
        assert len(client.sent) == count + 2 and client.sent[-1] > 64 * 64 * 3
        assert resent.images[0].shape == (64, 64, 3)


def test_a_miss_is_unknown_input_naming_the_input(peer: Peer) -> None:
    image = make_job("refine", rgb(64, 64, seed=9), prompt="p", steps=2, strength=0.5).image
    assert image is not None
    digest = hashlib.sha256(image.data).hexdigest()
    job = make_job("refine", image, prompt="p", steps=2, strength=0.5)
    peer.send(b"".join(encode(job, lambda a: Placed(ref=hash_ref(a, digest)))))
    error = peer.recv()
    assert isinstance(error, Error)
    assert (error.code, error.field, error.id) == (ErrorCode.UNKNOWN_INPUT, "inputs.image", job.id)
    assert "send the job again" in error.message
    peer.send(b"".join(encode(job, lambda a: Placed(sha256=digest))))  # same id: still free
    assert isinstance(peer.until(finished(job.id))[-1], Result)


def segments(pid: int) -> list[str]:
    pattern = re.compile(rf"sfumato-{pid}-[0-9a-f]{{16}}\Z")
    return [p.name for p in Path("/dev/shm").iterdir() if pattern.fullmatch(p.name)]


@pytest.mark.usefixtures("needs_shm")
def test_shared_memory_gives_the_bytes_result_and_leaves_no_segment(server: Any) -> None:
    image = rgb(128, 128, seed=7)
    with Counting(server.url, client_id=uuid.uuid4().hex) as client:
        assert client._refs is not None and client._refs.shm  # same machine: the probe read
        by_shm = client.run(refine(image), timeout=120)
        assert client.sent[-1] < 1024  # the pixels went through shared memory
        assert len(segments(os.getpid())) == 1  # kept for the next edit
        edited = image.copy()
        edited[0] ^= 0xFF
        again = client.run(refine(edited), timeout=120)  # the same segment, new bytes
        assert len(segments(os.getpid())) == 1
        assert not np.array_equal(again.images[0].to_numpy(), by_shm.images[0].to_numpy())
    with Client(server.url, client_id=uuid.uuid4().hex) as plain:
        plain._refs = None  # bytes on the socket, as a remote client sends them
        by_bytes = plain.run(refine(image), timeout=120)
    assert np.array_equal(by_shm.images[0].to_numpy(), by_bytes.images[0].to_numpy())
    assert segments(os.getpid()) == []  # the client removed its segments when it closed


CHILD = """
import sys, numpy as np
from sfumato import shmem
from sfumato.client import Client, make_job
stray = shmem.Segment(4096)  # made, never sent
client = Client(sys.argv[1], client_id=sys.argv[2])
client.connect()
assert client._refs.shm
image = np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)
job = make_job("refine", image, id="killed", prompt="p", steps=150, strength=1.0, seed=1)
client.submit(job)
while True:
    event = client.next_event(60)
    if getattr(event, "TYPE", "") == "progress":
        print("running", flush=True)
        break
sys.stdin.read()  # wait to be killed
"""


@pytest.mark.usefixtures("needs_shm")
def test_no_segment_leaks_when_a_client_is_killed_mid_job(server: Any) -> None:
    client_id = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.url, client_id],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "running"
        assert len(segments(child.pid)) == 2  # the job's (kept for the next) and the stray
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert wait_for(lambda: segments(child.pid) == []), segments(child.pid)
    finally:
        if child.poll() is None:
            child.kill()
        with Client(server.url, client_id=client_id) as again:  # free the shared worker
            again.cancel("killed")
            again.next_event(30)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
