"""``sfumato review OUT_DIR --export DEST``: the picked outputs, each with whatever the batch
wrote beside it, copied into DEST, and every reviewed output's decision written to
``decisions.csv`` and ``decisions.json`` (which also holds the history of every change).

The PNGs carry their signed content credentials inside the file, so a copy is the
credential; the export also records each copy's sha256 and its credentials' state, so whoever
receives the folder can check both without Sfumato.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Batch
from .decisions import Decision, Decisions, ReviewError

COLUMNS = ("key", "decision", "star", "comment", "reviewer", "updated", "prompt", "segment",
           "style", "seed", "width", "height", "steps", "model", "job_id", "file", "copied",
           "sha256", "credentials")  # fmt: skip


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    picked: int
    reviewed: int
    files: tuple[Path, ...]


def export_picks(batch: Batch, decisions: Decisions, dest: Path) -> ExportReport:
    if dest.resolve() == batch.folder.resolve():
        raise ReviewError(
            f"--export {dest} is the batch folder itself; name a new folder", "--export"
        )
    dest.mkdir(parents=True, exist_ok=True)
    reviews = decisions.all()
    rows, copied = [], []
    for row in batch.rows(reviews):
        if not reviews.get(row["key"]) or not reviews[row["key"]].reviewed:
            continue
        out: dict[str, Any] = {c: row.get(c, "") for c in COLUMNS}
        out["copied"], out["sha256"], out["credentials"] = [], "", ""
        if row["decision"] == Decision.PICK.value:
            for source in batch.sidecars(row["key"]):
                copied.append(_copy(source, dest / source.name))
                out["copied"].append(source.name)
            data = batch.file(row["key"]).read_bytes()
            out["sha256"] = hashlib.sha256(data).hexdigest()
            out["credentials"] = _credentials(data)
        rows.append(out)
    if not rows:
        raise ReviewError(
            f"nothing in {batch.folder} is reviewed yet; pick, reject, star or comment in "
            "`sfumato review` first",
            "OUT_DIR",
        )
    picked = sum(1 for r in rows if r["decision"] == Decision.PICK.value)
    # "history": every change in order, who chose what and when (the audit trail)
    body = {"batch": str(batch.folder.resolve()), "plan": batch.plan,
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "picked": picked, "items": rows,
            "history": decisions.history()}  # fmt: skip
    _write(dest / "decisions.json", json.dumps(body, indent=2).encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "copied": " ".join(r["copied"]), "star": int(bool(r["star"]))})
    _write(dest / "decisions.csv", text.getvalue().encode())
    return ExportReport(dest, picked, len(rows), tuple(copied))


def _credentials(data: bytes) -> str:
    """The credentials' validation state (``Valid`` …), or why it could not be read."""
    try:
        from ..provenance import verify_png

        return verify_png(data).state
    except ImportError:  # c2pa is a server extra
        return "unchecked (install sfumato[server] to check)"


def _copy(source: Path, target: Path) -> Path:
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
