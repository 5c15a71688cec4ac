"""The result store (service/store.py) on a real folder, without a server: what is written
reads back the same (hypothesis over images, seeds, prompts and owners), a write that fails
part way leaves nothing a reader could see, terminal records round-trip, and damaged files
give a typed :class:`StoreError` naming the job, never a traceback or a half result."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import Array, Cancelled, Error, ErrorCode, JobParams, Result, Task
from sfumato.service import store as store_module
from sfumato.service.store import ENDED, RESULT_JSON, ResultStore, StoreError, owner_key

from ..protocol.strategies import FAST, job_ids, texts, trained

owners = st.builds(owner_key, st.none() | st.text(max_size=8), st.text(max_size=8))


@st.composite
def results(draw: st.DrawFn) -> Result:
    count = draw(st.integers(1, 3))
    h, w, c = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.sampled_from((3, 4)))
    images = tuple(
        Array.from_numpy(
            np.frombuffer(draw(st.binary(min_size=h * w * c, max_size=h * w * c)), np.uint8)
            .reshape(h, w, c)
            .copy()
        )
        for _ in range(count)
    )
    first = draw(st.integers(0, 2**32 - count))
    return Result(
        id=draw(job_ids),
        task=draw(st.sampled_from(list(Task))),
        images=images,
        seeds=tuple(range(first, first + count)),
        model=draw(st.sampled_from(("tiny-sd", "sdxl-base", "ümlaut-model"))),
        tiny=draw(st.booleans()),
        prompt=draw(texts),
        timings={"run": draw(st.floats(0, 1e6)), "load": 0.25},
        trained=draw(st.none() | trained),  # a train job's entry comes back on fetch too
    )


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@FAST
@given(results(), owners, owners)
def test_what_is_written_reads_back_the_same_and_only_for_its_owner(
    tmp_path_factory: pytest.TempPathFactory, result: Result, owner: str, other: str
) -> None:
    store = ResultStore(tmp_path_factory.mktemp("results"))
    paths = store.write(owner, result, JobParams(prompt=result.prompt, width=64, height=64))
    assert [p.name for p in paths] == [f"image-{n}.png" for n in range(len(result.images))]
    assert store.exists(owner, result.id)
    assert store.read(owner, result.id) == result
    if other != owner:
        assert store.read(other, result.id) is None and not store.exists(other, result.id)
    assert store.ended(owner, result.id) is None  # a result is not a terminal record


def _result(job_id: str = "job-1", images: int = 2) -> Result:
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    return Result(job_id, Task.GENERATE, tuple(Array.from_numpy(pixels + n) for n in range(images)),
                  seeds=tuple(range(7, 7 + images)), model="tiny-sd", prompt="p",
                  timings={"run": 1.0})  # fmt: skip


@pytest.mark.parametrize("fail_at", [0, 1, 2])  # the first image, the second, result.json
def test_a_write_that_fails_part_way_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    store = ResultStore(tmp_path)
    real = store_module._write_synced
    calls = 0

    def failing(path: Path, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls > fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(store_module, "_write_synced", failing)
    with pytest.raises(StoreError) as caught:
        store.write("me", _result(), JobParams())
    message = str(caught.value)
    assert "'job-1'" in message and "disk of the result store is full" in message
    assert str(tmp_path) not in message  # clients never learn the server's paths
    assert calls == fail_at + 1
    assert store.read("me", "job-1") is None and not store.exists("me", "job-1")
    assert files_under(tmp_path) == []  # no temporary folder or half result is left


def test_a_write_that_fails_at_the_rename_leaves_the_other_results_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)
    first = _result()
    store.write("me", first, JobParams())

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(StoreError, match="the result store failed"):
        store.write("me", _result("job-2", images=1), JobParams())
    monkeypatch.undo()
    assert store.read("me", "job-1") == first
    assert store.read("me", "job-2") is None
    assert [p.name for p in files_under(tmp_path)] == ["image-0.png", "image-1.png", RESULT_JSON]


codes = st.sampled_from(list(ErrorCode))
fields = st.none() | st.from_regex(r"params\.[a-z_]{1,12}", fullmatch=True)


@FAST
@given(job_ids, owners, codes, texts, fields)
def test_terminal_records_round_trip_per_owner(
    tmp_path_factory: pytest.TempPathFactory,
    job_id: str,
    owner: str,
    code: ErrorCode,
    message: str,
    field: str | None,
) -> None:
    store = ResultStore(tmp_path_factory.mktemp("results"))
    error = Error(code, message, id=job_id, field=field)
    store.end(owner, error)
    assert store.ended(owner, job_id) == error
    assert store.ended(owner_key("x", owner), job_id) is None  # another identity: nothing
    store.end(owner, Cancelled(job_id))  # a record is replaced whole, never merged
    assert store.ended(owner, job_id) == Cancelled(job_id)
    assert store.read(owner, job_id) is None  # a terminal record is not a result
    store.forget_end(owner, job_id)
    assert store.ended(owner, job_id) is None
    store.forget_end(owner, job_id)  # forgetting twice is fine
    leftovers = [p.name for p in files_under(store.root)]
    assert leftovers == []


def _stored(tmp_path: Path) -> tuple[ResultStore, Path]:
    store = ResultStore(tmp_path)
    store.write("me", _result(), JobParams())
    return store, store.folder("me", "job-1")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_field(path: Path) -> None:
    meta = json.loads(path.read_text())
    del meta["seeds"]
    path.write_text(json.dumps(meta))


def _wrong_type(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["images"] = 5
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda f: _truncate(f / "image-1.png"), "image-1.png is missing or truncated"),
        (lambda f: (f / "image-0.png").unlink(), "image-0.png is missing or truncated"),
        (lambda f: (f / "image-0.png").write_bytes(b"not a png"), "image-0.png is missing"),
        (lambda f: _truncate(f / RESULT_JSON), f"{RESULT_JSON} cannot be read"),
        (lambda f: (f / RESULT_JSON).write_bytes(b"\xff\xfe"), f"{RESULT_JSON} cannot be read"),
        (lambda f: _drop_field(f / RESULT_JSON), f"{RESULT_JSON} lacks a field"),
        (lambda f: _wrong_type(f / RESULT_JSON), f"{RESULT_JSON} lacks a field"),
    ],
)
def test_a_damaged_result_is_a_typed_error_naming_the_job(
    tmp_path: Path, damage: object, says: str
) -> None:
    store, folder = _stored(tmp_path)
    damage(folder)  # type: ignore[operator]
    with pytest.raises(StoreError) as caught:
        store.read("me", "job-1")
    message = str(caught.value)
    assert "'job-1'" in message and says in message and "submit the job again" in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"type": "error", "id": "job-1"}', b'{"type": "error", "code": "no-such"}',
     b"[1, 2]", b"\xff"],
)  # fmt: skip
def test_a_damaged_terminal_record_answers_store_failed(tmp_path: Path, content: bytes) -> None:
    store = ResultStore(tmp_path)
    store.end("me", Error(ErrorCode.JOB_FAILED, "boom", id="job-1"))
    (tmp_path / "me" / ENDED / "job-1.json").write_bytes(content)
    got = store.ended("me", "job-1")
    assert isinstance(got, Error) and got.code is ErrorCode.STORE_FAILED and got.id == "job-1"
    assert "damaged" in got.message and "submit it again" in got.message


def test_an_unwritable_results_folder_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StoreError) as caught:
        ResultStore(blocked / "results")
    assert str(blocked / "results") in str(caught.value) and "--results" in str(caught.value)


def test_a_terminal_record_the_disk_refuses_is_a_store_error_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)

    def refused(path: Path, data: bytes) -> None:  # what a read-only folder does (as non-root)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(store_module, "_write_synced", refused)
    with pytest.raises(StoreError) as caught:
        store.end("me", Cancelled("job-1"))
    assert "'job-1'" in str(caught.value) and "writable" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    monkeypatch.undo()
    assert store.ended("me", "job-1") is None


@given(durable=st.booleans(), reason=st.sampled_from(["", "superseded"]))
def test_a_live_jobs_end_is_recorded_whole_but_not_synced(
    tmp_path_factory: pytest.TempPathFactory, durable: bool, reason: str
) -> None:
    """``durable=False`` (a live job's end: a crash forgets the live job itself) writes the
    record whole and readable, with no fsync; every other end is fsync'd, file and folder."""
    store = ResultStore(tmp_path_factory.mktemp("ends"))
    synced: list[int] = []
    real = store_module.os.fsync
    store_module.os.fsync = lambda fd: synced.append(fd)  # type: ignore[assignment]
    try:
        store.end("o", Cancelled("live-1", reason), durable=durable)
    finally:
        store_module.os.fsync = real  # type: ignore[assignment]
    assert store.ended("o", "live-1") == Cancelled("live-1", reason)
    assert len(synced) == (2 if durable else 0)
    assert not list((store.root / "o" / ENDED).glob(".*.tmp"))
