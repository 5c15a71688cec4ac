"""A batch folder as the review sees it: the outputs its ``manifest.json`` lists (written by
``sfumato batch``), each with the files beside it, merged with the review decisions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.runner import MANIFEST
from .decisions import Review, ReviewError

# What the page may group and filter by; each is a manifest field, except "decision".
FACETS = ("prompt", "segment", "style", "seed", "decision")


@dataclass(frozen=True)
class Batch:
    folder: Path
    plan: str
    entries: dict[str, dict[str, Any]]  # key → manifest entry, in manifest order

    def file(self, key: str) -> Path:
        return self.folder / self.entries[key]["file"]

    def sidecars(self, key: str) -> list[Path]:
        """The output and whatever the batch wrote beside it (``<key>.*``), not partial files."""
        main = self.file(key)
        found = {main} | {
            p for p in self.folder.glob(f"{_glob_escape(main.stem)}.*")
            if p.is_file() and not p.name.endswith(".part")
        }  # fmt: skip
        return sorted(found, key=lambda p: (p != main, p.name))

    def rows(self, reviews: dict[str, Review]) -> list[dict[str, Any]]:
        """Manifest entries with their review state, as the page and the export list them."""
        rows = []
        for key, entry in self.entries.items():
            review = reviews.get(key) or Review.blank(key)
            rows.append({**entry, **review.to_json()})
        return rows


def load_batch(folder: Path) -> Batch:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReviewError(
            f"{folder} has no {MANIFEST}: review a folder written by `sfumato batch PLAN --out "
            f"{folder}`",
            "OUT_DIR",
        ) from None
    except json.JSONDecodeError as exc:
        raise ReviewError(
            f"{path} is not valid JSON ({exc}); rerun the batch to rewrite it", "OUT_DIR"
        ) from None
    entries: dict[str, dict[str, Any]] = {}
    for entry in data.get("items", []):
        name = entry.get("file", "")
        if not isinstance(name, str) or Path(name).name != name or not name.endswith(".png"):
            raise ReviewError(
                f"{path}: item {entry.get('key')!r} names file {name!r}; a batch output is a PNG "
                "in the batch folder — rerun the batch to rewrite the manifest",
                "OUT_DIR",
            )
        if (folder / name).is_file():
            entries[str(entry["key"])] = entry
    if not entries:
        raise ReviewError(
            f"{folder} has no finished outputs yet; run `sfumato batch` into it first", "OUT_DIR"
        )
    return Batch(folder, str(data.get("plan", folder.name)), entries)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
