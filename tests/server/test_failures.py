"""Every accepted job ends, and every failure names itself: an engine that cannot import, a
damaged stored result, a full or unwritable store. Real server processes; each test's server
log must show no task that died unobserved (procs.UNOBSERVED)."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sfumato.client import make_job
from sfumato.protocol import Accepted, Cancel, Cancelled, Error, ErrorCode, Fetch, Result
from sfumato.service.store import owner_key

from .conftest import Peer, finished
from .procs import ServerProcess

pytestmark = pytest.mark.slow


def _small(**params: object) -> object:
    return make_job("generate", prompt="x", width=64, height=64, steps=2, seed=1, **params)


def _answer(peer: Peer, job_id: str) -> list[object]:
    return peer.until(finished(job_id), timeout=120)


def test_a_torch_that_cannot_import_ends_every_job_and_the_server_says_not_ready(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    (broken / "torch").mkdir(parents=True)
    (broken / "torch" / "__init__.py").write_text(
        "raise ImportError('libtorch_cpu.so: cannot open shared object file', name='torch')\n"
    )
    path = os.pathsep.join(p for p in (str(broken), os.environ.get("PYTHONPATH", "")) if p)
    server = serve(env={"PYTHONPATH": path})
    peer = Peer(server.url)
    peer.hello()
    for _ in range(3):  # the second failure once escaped and ended the worker for good
        job = _small()
        peer.send(job)
        messages = _answer(peer, job.id)
        assert isinstance(messages[0], Accepted)
        error = messages[-1]
        assert isinstance(error, Error) and error.code is ErrorCode.ENGINE_UNAVAILABLE
        assert "torch does not import" in error.message and "pip install" in error.message
    later = Peer(server.url)
    welcome = later.hello()
    assert welcome.ready is False and "torch" in welcome.status
    later.close()
    peer.close()


def _stored_png(server: ServerProcess, client_id: str, job_id: str) -> Path:
    return server.results / owner_key(None, client_id) / job_id / "image-0.png"


def test_a_damaged_or_missing_stored_image_answers_fetch_with_a_typed_error(
    serve: Callable[..., ServerProcess],
) -> None:
    server = serve()
    peer = Peer(server.url)
    client_id = peer.hello().client_id
    job = _small()
    peer.send(job)
    assert isinstance(_answer(peer, job.id)[-1], Result)
    png = _stored_png(server, client_id, job.id)
    png.write_bytes(png.read_bytes()[:100])  # truncated
    for damage in ("truncated", "missing"):
        if damage == "missing":
            png.unlink()
        peer.send(Fetch(job.id))
        error = peer.until(lambda m: getattr(m, "id", None) == job.id, timeout=20)[-1]
        assert isinstance(error, Error) and error.code is ErrorCode.STORE_FAILED, error
        assert job.id in error.message and "new id" in error.message
        assert str(server.results) not in error.message
    again = _small()  # and the server goes on
    peer.send(again)
    assert isinstance(_answer(peer, again.id)[-1], Result)
    peer.close()


def test_a_store_that_cannot_write_names_the_store_not_the_engine(
    serve: Callable[..., ServerProcess],
) -> None:
    server = serve()
    peer = Peer(server.url)
    peer.hello()
    warm = _small()  # the tiny model is built and loaded before the disk "fills"
    peer.send(warm)
    assert isinstance(_answer(peer, warm.id)[-1], Result)
    pid, unlimited = server.proc.pid, resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        # The journal entry fits in 2 KB, the result's PNG does not: the job is kept, then fails.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (2048, unlimited[1]))
        job = _small()
        peer.send(job)
        messages = _answer(peer, job.id)
        error = messages[-1]
        assert isinstance(messages[0], Accepted)
        assert isinstance(error, Error) and error.code is ErrorCode.STORE_FAILED, error
        assert "file size limit" in error.message and "engine" not in error.message
        assert str(server.results) not in error.message and "/" not in error.message
        peer.send(Fetch(job.id))  # its end was recorded: fetch answers the same error
        fetched = peer.until(lambda m: getattr(m, "id", None) == job.id)[-1]
        assert isinstance(fetched, Error) and fetched.code is ErrorCode.STORE_FAILED
        # Not even the journal entry fits: the job is refused, never accepted.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (64, unlimited[1]))
        refused = _small()
        peer.send(refused)
        (answer,) = peer.until(lambda m: getattr(m, "id", None) == refused.id)
        assert isinstance(answer, Error) and answer.code is ErrorCode.STORE_FAILED
        assert f"could not keep job {refused.id!r}" in answer.message
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, unlimited)
    after = _small()
    peer.send(after)
    assert isinstance(_answer(peer, after.id)[-1], Result)
    peer.close()


def _without_dac_override() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
    bounding set, so that root, too, must obey a folder's mode bits (as any service user)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_serve_on_a_read_only_results_folder_exits_with_a_message(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sfumato.cli", "serve", "--port", "0", "--no-preload",
             "--results", str(results), "--cache", str(tmp_path / "cache")],
            capture_output=True, text=True, timeout=120,
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
        )  # fmt: skip
    finally:
        results.chmod(0o755)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "results folder" in proc.stderr and "--results" in proc.stderr, proc.stderr
    assert str(results) in proc.stderr  # the admin's console may name the path


def test_jobs_that_end_without_a_result_answer_fetch_with_how_they_ended(
    serve: Callable[..., ServerProcess],
) -> None:
    server = serve()
    peer = Peer(server.url)
    client_id = peer.hello().client_id
    running = make_job("generate", prompt="x", width=128, height=128, steps=40, seed=2)
    queued, never = _small(), _small()
    for job in (running, queued):
        peer.send(job)
    peer.until(lambda m: isinstance(m, Accepted) and m.id == queued.id)
    peer.send(Cancel(queued.id))
    assert isinstance(peer.until(finished(queued.id))[-1], Cancelled)
    peer.until(finished(running.id))
    peer.close()
    later = Peer(server.url)  # the same identity, reconnected
    later.hello(client_id=client_id)
    later.send(Fetch(queued.id))
    again = later.until(lambda m: getattr(m, "id", None) == queued.id)[-1]
    assert isinstance(again, Cancelled)
    later.send(Fetch(never.id))  # never submitted: that one is not found
    missing = later.until(lambda m: getattr(m, "id", None) == never.id)[-1]
    assert isinstance(missing, Error) and missing.code is ErrorCode.NOT_FOUND
    later.send(queued)  # the id of a job that ended without a result may be used again
    assert isinstance(later.until(finished(queued.id))[-1], Result)
    later.close()
