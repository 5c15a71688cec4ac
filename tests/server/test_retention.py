"""Retention of the result store: finished results go oldest first past an age or a size;
unfinished jobs, busy jobs and anything that is not a finished result are never touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfumato.protocol import Error, ErrorCode, Fetch, Result
from sfumato.service.retention import prune

from .conftest import Peer
from .limited import limited_server, plant

DAY = 86400.0


def _age(folder: Path, days: float) -> None:
    stamp = time.time() - days * DAY
    os.utime(folder / "result.json", (stamp, stamp))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    # whole thousandths of a day (86 s): ages that differ, differ on the file system's clock
    ages=st.lists(st.floats(0, 60).map(lambda d: round(d, 3)), min_size=1, max_size=8),
    max_days=st.sampled_from([0.0, 1.0, 10.0, 30.0]),
    cap_results=st.integers(0, 8),
    busy_index=st.integers(0, 7),
)
def test_prune_keeps_the_newest_that_fit(
    tmp_path_factory, ages: list[float], max_days: float, cap_results: int, busy_index: int
) -> None:
    root = tmp_path_factory.mktemp("store")
    folders = []
    for n, days in enumerate(ages):
        plant(root, "c", f"j{n}")
        owner_dir = next(p for p in root.iterdir() if not p.name.startswith("."))
        folders.append(owner_dir / f"j{n}")
        _age(folders[-1], days)
    unfinished = owner_dir / "running"  # a job folder without result.json
    unfinished.mkdir()
    (unfinished / "partial").write_bytes(b"x" * 10)
    one = _size(folders[0])
    max_bytes = cap_results * one if cap_results else 0
    busy = {(owner_dir.name, f"j{busy_index}")} if busy_index < len(ages) else set()

    pruned = prune(root, max_days * DAY, max_bytes, busy)

    kept = {f.name for f in folders if f.exists()}
    assert unfinished.exists()
    for n, days in enumerate(ages):
        name = f"j{n}"
        if (owner_dir.name, name) in busy:
            assert name in kept
        elif max_days and days > max_days + 0.01:
            assert name not in kept
    candidates = [f for n, f in enumerate(folders) if (owner_dir.name, f"j{n}") not in busy]
    if max_bytes:
        assert sum(_size(f) for f in candidates if f.exists()) <= max_bytes
    # oldest first: everything removed is older than everything kept (busy ones aside)
    removed_ages = [ages[n] for n, f in enumerate(folders) if not f.exists()]
    kept_ages = [ages[n] for n, f in enumerate(folders) if f.exists() and f in candidates]
    if removed_ages and kept_ages:
        assert min(removed_ages) >= max(kept_ages)
    assert pruned.results == len(removed_ages)


def test_journaled_and_temporary_entries_are_never_pruned(tmp_path: Path) -> None:
    plant(tmp_path, "c", "old")
    owner_dir = next(tmp_path.iterdir())
    _age(owner_dir / "old", 400)
    kept = [owner_dir / ".journal" / "queued.job", owner_dir / ".old-abc" / "image-0.png"]
    for path in kept:
        path.parent.mkdir()
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 400 * DAY,) * 2)
    pruned = prune(tmp_path, 1 * DAY, 1)
    assert pruned.results == 1 and not (owner_dir / "old").exists()
    assert all(path.exists() for path in kept)


def test_nothing_is_pruned_when_retention_is_off(tmp_path: Path) -> None:
    plant(tmp_path, "c", "old")
    folder = next(tmp_path.iterdir()) / "old"
    _age(folder, 400)
    assert prune(tmp_path, 0, 0).results == 0 and folder.exists()


def test_the_server_prunes_at_start_and_fetch_says_so(tmp_path: Path, model_cache: Path) -> None:
    results = tmp_path / "server" / "results"
    plant(results, "keeper", "fresh")
    plant(results, "keeper", "stale")
    owner_dir = next(results.iterdir())
    _age(owner_dir / "stale", 3)
    ended = owner_dir / ".ended"
    ended.mkdir()
    (ended / "gone.json").write_text("{}")
    os.utime(ended / "gone.json", (time.time() - 3 * DAY,) * 2)
    resources = {"retention_days": 1.0, "retention_bytes": 0}
    with limited_server(tmp_path / "server", model_cache, resources) as server:
        peer = Peer(server.url)
        try:
            peer.hello(client_id="keeper")
            deadline = time.monotonic() + 10
            while (owner_dir / "stale").exists():
                assert time.monotonic() < deadline, "the stale result was never pruned"
                time.sleep(0.1)
            peer.send(Fetch("fresh"))
            assert isinstance(peer.recv(), Result)
            peer.send(Fetch("stale"))
            gone = peer.recv()
            assert isinstance(gone, Error) and gone.code is ErrorCode.NOT_FOUND
        finally:
            peer.close()
        assert not (ended / "gone.json").exists()
        assert "retention: pruned 1 results" in server.log_text()
    assert owner_dir.exists()
