"""The journal and the store's terminal records, without a server: what is kept, in what
order, and how every entry that cannot run again ends (``interrupted``, never lost)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfumato.client import make_job
from sfumato.protocol import (
    Array,
    Cancelled,
    Error,
    ErrorCode,
    Job,
    JobParams,
    Limits,
    Result,
    Task,
    Welcome,
    decode_client_message,
    decode_server_message,
    encode_bytes,
)
from sfumato.registry import Registry
from sfumato.service.fair_queue import FairQueue
from sfumato.service.journal import JOURNAL, MAX_RESTARTS, Journal, recover
from sfumato.service.store import ResultStore, StoreError, disk_problem

from ..protocol.strategies import jobs

OWNER_A, OWNER_B = "a" * 24, "b" * 24
REGISTRY = Registry.load(None)


def _inpaint(job_id: str, seed: int = 0) -> Job:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (16, 24, 4), dtype=np.uint8)
    mask = (rng.random((16, 24, 1)) > 0.5).astype(np.uint8) * 255
    return make_job("inpaint", image, mask, id=job_id, prompt="p", seed=seed, steps=2)


def _recover(root: Path, registry: Registry = REGISTRY) -> list:
    return recover(Journal(root), ResultStore(root), registry, registry.default, Limits())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job=jobs(), owner=st.sampled_from([OWNER_A, OWNER_B]))
def test_a_journaled_job_reads_back_as_the_same_message(
    tmp_path_factory: pytest.TempPathFactory, job: Job, owner: str
) -> None:
    root = tmp_path_factory.mktemp("store")
    Journal(root).write(owner, job, "tiny-sd")
    (pending,) = Journal(root).pending()
    assert (pending.owner, pending.job_id, pending.problem) == (owner, job.id, "")
    assert decode_client_message(pending.message, Limits()) == job
    assert pending.message == encode_bytes(job)


def test_recovery_queues_unfinished_jobs_in_order_with_their_inputs(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first, second, third = _inpaint("j1", 1), _inpaint("j2", 2), make_job("generate", id="j3")
    journal.write(OWNER_B, first, "tiny-sd")
    journal.write(OWNER_A, second, "tiny-sd")
    journal.write(OWNER_B, third, "tiny-sd")
    entries = _recover(tmp_path)
    assert [(e.owner, e.job.id) for e in entries] == [
        (OWNER_B, "j1"), (OWNER_A, "j2"), (OWNER_B, "j3"),
    ]  # fmt: skip
    assert entries[0].job == first and entries[1].job == second  # arrays byte for byte
    assert all(e.model == REGISTRY.default for e in entries)
    queue = FairQueue()
    for entry in entries:
        queue.push(entry)
    assert [queue.pop().job.id for _ in entries] == ["j1", "j2", "j3"]  # type: ignore[union-attr]


def test_a_job_whose_result_was_stored_before_the_stop_is_not_run_again(tmp_path: Path) -> None:
    store, journal = ResultStore(tmp_path), Journal(tmp_path)
    job, other = make_job("generate", id="done"), make_job("generate", id="ended")
    journal.write(OWNER_A, job, "tiny-sd")
    journal.write(OWNER_A, other, "tiny-sd")
    store.write(OWNER_A, _result("done"), job.params)
    store.end(OWNER_A, Cancelled("ended"))
    assert _recover(tmp_path) == []
    assert Journal(tmp_path).pending() == []  # both entries dropped


def test_a_damaged_entry_ends_as_interrupted_naming_the_job(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write(OWNER_A, _inpaint("cut"), "tiny-sd")
    journal.write(OWNER_A, make_job("generate", id="fine"), "tiny-sd")
    path = tmp_path / OWNER_A / JOURNAL / "cut.job"
    path.write_bytes(path.read_bytes()[:-7])  # a torn write the disk kept
    (entry,) = _recover(tmp_path)
    assert entry.job.id == "fine"
    ended = ResultStore(tmp_path).ended(OWNER_A, "cut")
    assert isinstance(ended, Error) and ended.code is ErrorCode.INTERRUPTED and ended.id == "cut"
    assert "'cut'" in ended.message and "truncated" in ended.message and "submit" in ended.message
    assert [p.job_id for p in Journal(tmp_path).pending()] == ["fine"]


def test_a_job_whose_model_left_the_registry_ends_as_interrupted(tmp_path: Path) -> None:
    registry_file = tmp_path / "models.toml"
    registry_file.write_text(
        'default = "house"\n[models.house]\nkind = "base"\nfamily = "sd15"\n'
        'source = "tiny:sd15"\n[models.gone]\nkind = "base"\nfamily = "sd15"\n'
        'source = "tiny:sd15"\n'
    )
    root = tmp_path / "results"
    Journal(root).write(OWNER_A, make_job("generate", id="j", model="gone"), "gone")
    before = Registry.load(registry_file)
    registry_file.write_text(registry_file.read_text().split("[models.gone]")[0])
    after = Registry.load(registry_file)
    assert before.get("gone") and _recover(root, after) == []
    ended = ResultStore(root).ended(OWNER_A, "j")
    assert isinstance(ended, Error) and ended.code is ErrorCode.INTERRUPTED
    assert "gone" in ended.message


def test_a_job_that_keeps_interrupting_the_server_ends_after_max_restarts(tmp_path: Path) -> None:
    Journal(tmp_path).write(OWNER_A, make_job("generate", id="crasher"), "tiny-sd")
    for _ in range(MAX_RESTARTS):  # each time the server died again while it ran
        (entry,) = _recover(tmp_path)
        assert entry.job.id == "crasher"
    assert _recover(tmp_path) == []
    ended = ResultStore(tmp_path).ended(OWNER_A, "crasher")
    assert isinstance(ended, Error) and ended.code is ErrorCode.INTERRUPTED
    assert f"{MAX_RESTARTS + 1} restarts" in ended.message


def test_removing_an_entry_forgets_it_and_new_sequence_numbers_follow_old_ones(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    journal.write(OWNER_A, make_job("generate", id="x"), "tiny-sd")
    journal.remove(OWNER_A, "x")
    journal.remove(OWNER_A, "x")  # twice is fine
    assert journal.pending() == []
    journal.write(OWNER_A, make_job("generate", id="y"), "tiny-sd")
    later = Journal(tmp_path)
    (old,) = later.pending()
    later.write(OWNER_A, make_job("generate", id="z"), "tiny-sd")
    assert [p.job_id for p in later.pending()] == ["y", "z"] and old.job_id == "y"


def _result(job_id: str) -> Result:
    image = Array.from_numpy(np.full((8, 8, 3), 200, dtype=np.uint8))
    return Result(id=job_id, task=Task.GENERATE, images=(image, image), seeds=(1, 2), model="m")


def test_a_damaged_stored_result_is_a_store_error_naming_the_job(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    (first, _) = store.write(OWNER_A, _result("r1"), JobParams(prompt="p"))
    assert store.read(OWNER_A, "r1") is not None
    first.write_bytes(first.read_bytes()[:40])
    with pytest.raises(StoreError, match=r"job 'r1' is damaged \(image-0.png"):
        store.read(OWNER_A, "r1")
    first.unlink()
    with pytest.raises(StoreError, match=r"image-0\.png is missing or truncated"):
        store.read(OWNER_A, "r1")
    (first.parent / "result.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"result\.json cannot be read"):
        store.read(OWNER_A, "r1")
    assert store.read(OWNER_A, "never") is None


def test_terminal_records_answer_like_the_event_did(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.end(OWNER_A, Error(ErrorCode.JOB_FAILED, "it broke; retry", id="e", field="params.x"))
    store.end(OWNER_A, Cancelled("c"))
    assert store.ended(OWNER_A, "e") == Error(
        ErrorCode.JOB_FAILED, "it broke; retry", id="e", field="params.x"
    )
    assert store.ended(OWNER_A, "c") == Cancelled("c")
    assert store.ended(OWNER_B, "c") is None  # per identity
    store.forget_end(OWNER_A, "c")
    assert store.ended(OWNER_A, "c") is None
    assert not store.exists(OWNER_A, "e")  # an ended id may be used again


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "not writable"),
        (errno.EMFILE, "file descriptors"),
        (errno.EFBIG, "file size limit"),
        (errno.EIO, "Input/output error"),
    ],
)
def test_disk_problems_name_the_problem_and_fix_but_never_the_path(code: int, says: str) -> None:
    exc = OSError(code, "x", "/srv/secret/results/abc/job/image-0.png")
    text = disk_problem(exc, "could not store the result of job 'j'")
    assert says in text and "job 'j'" in text and "submit the job again" in text
    assert "/srv" not in text and "secret" not in text


def test_a_results_folder_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"not usable.*--results"):
        ResultStore(blocker / "results")


def test_welcome_says_when_the_server_is_not_ready_and_is_unchanged_when_it_is() -> None:
    ready = Welcome("1", 1)
    assert b"ready" not in encode_bytes(ready)
    assert decode_server_message(encode_bytes(ready)) == ready
    down = Welcome("1", 1, ready=False, status="torch does not import; repair the install")
    assert decode_server_message(encode_bytes(down)) == down
