"""``sfumato batch PLAN --from-picks OUT_DIR``: the outputs picked in review, run again through
the same plan and runner, with more seeds per pick (``--variations``) or more steps.

Each pick is found in the plan by its key and checked against the prompt it was made from,
so a plan edited since the batch cannot silently rerun something else. The new seeds derive
from the pick's key, so a rerun killed midway resumes with the same items.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..batch.plan import Item, Plan
from .catalog import load_batch
from .decisions import DB_NAME, Decision, Decisions, ReviewError

LINEAGE = "from-picks.json"


@dataclass(frozen=True)
class Rerun:
    plan: Plan  # the plan with the new step count
    items: list[Item]
    lineage: dict[str, list[str]]  # picked key → the keys rerun from it


def variation_seed(key: str, n: int) -> int:
    """The n-th extra seed of a pick: stable for the key, spread over the whole seed range."""
    return int.from_bytes(hashlib.sha256(f"{key}/variation/{n}".encode()).digest()[:4], "big")


def picks_rerun(
    plan: Plan, source: Path, *, variations: int = 0, steps: int | None = None
) -> Rerun:
    if variations < 0:
        raise ReviewError(
            f"--variations {variations}: give 0 or more extra seeds per pick", "--variations"
        )
    if steps is not None and not 1 <= steps <= 1000:
        raise ReviewError(f"--steps {steps}: give a step count from 1 to 1000", "--steps")
    if variations == 0 and steps in (None, plan.steps):
        raise ReviewError(
            f"nothing new to run: pass --variations N (extra seeds per pick) or --steps S "
            f"(the plan has {plan.steps})",
            "--variations",
        )
    if not (source / DB_NAME).is_file():
        raise ReviewError(
            f"{source} has no {DB_NAME}: review it with `sfumato review {source}` and pick outputs first",
            "--from-picks",
        )
    batch = load_batch(source)
    with Decisions(source) as decisions:
        reviews = decisions.all()
    picks = [k for k in batch.entries if k in reviews and reviews[k].decision is Decision.PICK]
    if not picks:
        raise ReviewError(f"nothing in {source} is picked; pick outputs in `sfumato review {source}`",
                          "--from-picks")  # fmt: skip
    by_key = {item.key: item for item in plan.items()}
    items: dict[str, Item] = {}
    lineage: dict[str, list[str]] = {}
    for key in picks:
        item = by_key.get(key)
        if item is None or item.full_prompt != batch.entries[key].get("full_prompt"):
            raise ReviewError(
                f"pick {key} is not an item of plan {plan.name!r} as it stands; pass the plan "
                f"{source} was made from",
                "PLAN",
            )
        again = [item] + [replace(item, seed=variation_seed(key, n)) for n in range(variations)]
        lineage[key] = [i.key for i in again]
        items.update((i.key, i) for i in again)
    return Rerun(replace(plan, steps=steps or plan.steps), list(items.values()), lineage)


def write_lineage(out: Path, source: Path, rerun: Rerun) -> Path:
    """Which pick each new output came from, beside the new manifest."""
    out.mkdir(parents=True, exist_ok=True)
    body = {"from": str(source.resolve()), "steps": rerun.plan.steps, "picks": rerun.lineage}
    path = out / LINEAGE
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
