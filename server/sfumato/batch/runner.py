"""Run a plan through a server: at most a few jobs in flight (the server's queue does the
rest), each output written as soon as it arrives, the manifest rewritten after each one, so a
run killed midway loses nothing and a rerun skips every finished item."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import Client, make_job
from ..protocol import Cancelled, Error, Result
from .plan import Item, Plan

MANIFEST = "manifest.json"


@dataclass
class BatchReport:
    total: int
    skipped: int  # finished by an earlier run
    generated: int
    failed: list[tuple[str, str]]  # (item key, reason)
    manifest: Path


def run_plan(
    plan: Plan,
    client: Client,
    out: Path,
    *,
    in_flight: int = 4,
    timeout: float = 3600,
    on_progress: Callable[[int, int], None] | None = None,
    items: list[Item] | None = None,
) -> BatchReport:
    """Run ``items`` (default: the plan's whole matrix; ``--from-picks`` passes a chosen few)."""
    out.mkdir(parents=True, exist_ok=True)
    items = plan.items() if items is None else items
    entries = _load_manifest(out)
    todo = [item for item in items if not _finished(out, entries.get(item.key))]
    skipped = len(items) - len(todo)
    done, failed = skipped, []
    pending: dict[str, Item] = {}
    queue = list(todo)
    deadline = time.monotonic() + timeout
    if on_progress:
        on_progress(done, len(items))
    while queue or pending:
        while queue and len(pending) < in_flight:
            item = queue.pop(0)
            pending[item.job_id] = item
            client.submit(_job(plan, item))
        event = client.next_event(timeout=max(0.1, deadline - time.monotonic()))
        if event is None:
            raise TimeoutError(f"the batch did not finish within {timeout} s")
        item = pending.get(getattr(event, "id", ""))
        if item is None:
            continue
        if isinstance(event, Result):
            entries[item.key] = _record(plan, item, event, out)
            _save_manifest(out, plan, entries, items)
        elif isinstance(event, (Error, Cancelled)):
            reason = event.message if isinstance(event, Error) else "cancelled"
            failed.append((item.key, reason))
        else:
            continue
        del pending[item.job_id]
        done += 1
        if on_progress:
            on_progress(done, len(items))
    _save_manifest(out, plan, entries, items)
    return BatchReport(len(items), skipped, len(todo) - len(failed), failed, out / MANIFEST)


def _job(plan: Plan, item: Item) -> Any:
    return make_job(
        "generate", id=item.job_id, prompt=item.full_prompt, negative=plan.negative,
        width=item.width, height=item.height, steps=plan.steps, guidance=plan.guidance,
        seed=item.seed, model=plan.model, loras=item.style.loras, files=True,
    )  # fmt: skip


def _record(plan: Plan, item: Item, result: Result, out: Path) -> dict[str, Any]:
    path = out / f"{item.key}.png"
    tmp = path.with_suffix(".png.part")
    tmp.write_bytes(bytes(result.files[0]))  # the signed file, credentials included
    os.replace(tmp, path)
    return {
        "key": item.key, "file": path.name, "job_id": item.job_id, "prompt": item.prompt,
        "full_prompt": item.full_prompt, "segment": item.segment, "style": item.style.name,
        "loras": [{"name": lo.name, "weight": lo.weight} for lo in item.style.loras],
        "width": item.width, "height": item.height, "seed": result.seeds[0],
        "model": result.model, "tiny": result.tiny, "steps": plan.steps,
    }  # fmt: skip


def _finished(out: Path, entry: dict[str, Any] | None) -> bool:
    return entry is not None and (out / entry["file"]).is_file()


def _load_manifest(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {entry["key"]: entry for entry in data.get("items", [])}


def _save_manifest(
    out: Path, plan: Plan, entries: dict[str, dict[str, Any]], items: list[Item]
) -> None:
    ordered = [entries[item.key] for item in items if item.key in entries]
    body = {"plan": plan.name, "total": len(items), "finished": len(ordered), "items": ordered}
    tmp = out / (MANIFEST + ".part")
    tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)


def progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done == total else ""
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )
