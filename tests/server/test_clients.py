"""Several clients at once: fairness, isolation, and results that survive a dead client."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import uuid

import numpy as np

from sfumato.client import Client, make_job
from sfumato.protocol import Accepted, Error, ErrorCode, Fetch, Result

from .conftest import Peer, finished

SMALL = {"width": 64, "height": 64, "steps": 3}


def test_two_clients_are_served_fairly(serve) -> None:
    """Client a queues three jobs, then b one: b's runs before a's last (round-robin, not
    first come first served). Judged by the order the server's log says it started them."""
    server = serve()
    a, b = Peer(server.url), Peer(server.url)
    try:
        a.hello()
        b.hello()
        a_jobs = [
            make_job("generate", prompt=f"a{i}", seed=i, width=64, height=64, steps=6)
            for i in range(3)
        ]
        b_job = make_job("generate", prompt="b", seed=9, width=64, height=64, steps=6)
        for job in a_jobs:
            a.send(job)
        a.until(lambda m: isinstance(m, Accepted) and m.id == a_jobs[-1].id)  # all queued
        b.send(b_job)
        assert isinstance(b.until(finished(b_job.id))[-1], Result)
        assert isinstance(a.until(finished(a_jobs[-1].id))[-1], Result)
        ids = [job.id for job in (*a_jobs, b_job)]
        started = re.findall(r"job (\S+): generate on ", server.log())
        order = [i for i in started if i in ids]
        assert sorted(order) == sorted(ids), started  # each ran once
        assert order.index(b_job.id) < order.index(a_jobs[-1].id), order
    finally:
        a.close()
        b.close()


def test_one_clients_bad_frames_do_not_touch_anothers_job(server) -> None:
    good, bad = Peer(server.url), Peer(server.url)
    try:
        good.hello()
        bad.hello()
        job = make_job("generate", prompt="steady", seed=2, steps=8, width=64, height=64)
        good.send(job)
        for junk in (b"\xff\x00", b"", "text", b"\x81\xa1v\x01"):
            bad.send(junk)
            assert isinstance(bad.recv(), Error)
        assert isinstance(good.until(finished(job.id))[-1], Result)
    finally:
        good.close()
        bad.close()


def test_killed_client_can_fetch_its_result_after_reconnecting(server) -> None:
    client_id = uuid.uuid4().hex
    job_id = "killed-" + uuid.uuid4().hex[:8]
    script = textwrap.dedent(f"""
        import os, signal
        from sfumato.client import Client, make_job
        from sfumato.protocol import Progress
        c = Client({server.url!r}, client_id={client_id!r})
        c.connect()
        c.submit(make_job("generate", id={job_id!r}, prompt="x", seed=3, width=64, height=64, steps=12))
        while True:
            e = c.next_event(60)
            if isinstance(e, Progress) and e.step >= 1:
                print("dying", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9 and "dying" in proc.stdout
    with Client(server.url, client_id=client_id) as client:
        client.fetch(job_id)
        result = client.wait(job_id, timeout=120)  # still running: accepted, then the result
        assert result.seeds == (3,) and result.images[0].shape == (64, 64, 3)
    with Client(server.url, client_id=client_id) as again:  # and once finished, from the store
        again.fetch(job_id)
        stored = again.wait(job_id, timeout=30)
        assert np.array_equal(stored.images[0].to_numpy(), result.images[0].to_numpy())


def test_fetch_never_returns_another_clients_result(server) -> None:
    with Client(server.url) as owner:
        job = make_job("generate", prompt="mine", seed=1, **SMALL)
        owner.run(job, timeout=120)
    thief = Peer(server.url)
    try:
        thief.hello()  # a different client_id
        thief.send(Fetch(job.id))
        reply = thief.recv()
        assert isinstance(reply, Error) and reply.code is ErrorCode.NOT_FOUND
    finally:
        thief.close()
