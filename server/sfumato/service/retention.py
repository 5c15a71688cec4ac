"""Retention of the result store: finished results are pruned, oldest first, past an age or a
total size (``resources.retention_days`` / ``retention_bytes``).

The store is a reconnect buffer, not an archive (the plugins put every result into the
document or the scene): unpruned, it grew ~18 KB per small job forever (issue 17). Only
finished results — a ``<owner>/<job id>/`` folder holding ``result.json`` — are ever removed,
and never one the caller marks busy; anything else in the store (journaled or running jobs,
temporary folders, names starting with ``.``) is left alone, except the terminal records of
jobs that ended without a result (``<owner>/.ended/<id>.json``), which age out the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

RESULT_JSON = "result.json"  # the marker of a finished result (store.py writes it last)
ENDED = ".ended"
PRUNE_INTERVAL = 600.0  # seconds between prunes while the server runs


@dataclass(frozen=True)
class Pruned:
    results: int  # result folders removed
    bytes: int  # their size
    kept: int  # finished results left
    kept_bytes: int  # their size
    records: int  # terminal records removed


@dataclass(frozen=True)
class _Finished:
    mtime: float
    size: int
    path: Path


def prune(
    root: Path,
    max_age_s: float,
    max_bytes: int,
    busy: Collection[tuple[str, str]] = (),
    now: float | None = None,
) -> Pruned:
    """Remove finished results older than ``max_age_s`` (0: no age limit), then the oldest
    until the rest fit in ``max_bytes`` (0: no size limit). Blocking: run it off the loop."""
    now = time.time() if now is None else now
    finished: list[_Finished] = []
    records = 0
    for owner in _folders(root):
        for job in _folders(owner):
            if (owner.name, job.name) in busy:
                continue
            try:
                mtime = (job / RESULT_JSON).stat().st_mtime
            except OSError:
                continue  # not a finished result: never ours to remove
            finished.append(_Finished(mtime, _size(job), job))
        records += _prune_records(owner / ENDED, now - max_age_s if max_age_s else None)
    finished.sort(key=lambda f: f.mtime)
    total = sum(f.size for f in finished)
    removed = removed_bytes = 0
    for entry in finished:
        too_old = bool(max_age_s) and now - entry.mtime > max_age_s
        too_big = bool(max_bytes) and total > max_bytes
        if not (too_old or too_big):
            break  # oldest first: everything after this one is younger and fits
        if _remove(entry.path):
            removed += 1
            removed_bytes += entry.size
            total -= entry.size
    return Pruned(removed, removed_bytes, len(finished) - removed, total, records)


def _folders(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if not p.name.startswith(".") and p.is_dir()]
    except OSError:
        return []


def _size(folder: Path) -> int:
    total = 0
    try:
        for item in folder.iterdir():
            with contextlib.suppress(OSError):
                total += item.stat().st_size
    except OSError:
        pass
    return total


def _remove(folder: Path) -> bool:
    """Rename out of the way first, so a concurrent fetch sees the whole result or none."""
    hidden = folder.with_name(f".pruned-{folder.name}-{os.getpid()}")
    try:
        os.replace(folder, hidden)
    except OSError:
        return False
    shutil.rmtree(hidden, ignore_errors=True)
    return True


def _prune_records(folder: Path, before: float | None) -> int:
    if before is None:
        return 0
    removed = 0
    try:
        items = list(folder.iterdir())
    except OSError:
        return 0
    for item in items:
        try:
            if item.suffix == ".json" and item.stat().st_mtime < before:
                item.unlink()
                removed += 1
        except OSError:
            pass
    return removed
