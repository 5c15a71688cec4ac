"""Each registry entry's weights on this machine: present or not, how big, and the command or
step that brings them — what ``sfumato models`` prints (and what a doctor can reuse).

File checks only, like weights.py (whose ``present`` decides what servers tell clients): no
torch, no hub request. Sizes count a hub snapshot's files through their links to the blobs.
An entry with a ``weight`` is present when that file or folder is in its repo's snapshot (its
size and place are those of that path); a pinned hub entry only when those files are the
pinned ones, told by the names of the blobs the snapshot links to (content hashes the hub
gave, as a pull checked them: no rehashing of gigabytes on every listing).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .digest import file_sha256, sha256_at
from .hubfiles import cached_snapshot, folder_size
from .rules import ModelEntry, Registry
from .weights import hub_cache, present


@dataclass(frozen=True)
class LocalState:
    """One entry as this machine has it."""

    name: str
    kind: str
    family: str
    source: str
    present: bool
    size: int | None  # bytes on disk; None when absent or built on first use (tiny)
    where: str  # the folder or file holding the weights, "" when absent
    fix: str  # what brings the weights here, "" when present

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "kind": self.kind, "family": self.family, "source": self.source,
            "present": self.present, "size": self.size, "where": self.where, "fix": self.fix,
        }  # fmt: skip


def local_state(entry: ModelEntry, registry_path: Path | None = None) -> LocalState:
    """``entry``'s weights here; the fix names ``--registry`` when the entry comes from a file."""
    here = present(entry)
    size: int | None = None
    where = ""
    unpinned = False
    if entry.scheme == "hub":
        snap = cached_snapshot(hub_cache(), entry.location) if here else None
        if (
            snap is not None
            and entry.sha256
            and pin_here(snap, entry.weight) != entry.sha256.lower()
        ):
            here, snap, unpinned = False, None, True
        if snap is not None:
            path = snap / entry.weight if entry.weight else snap
            where = str(path)
            size = path.stat().st_size if path.is_file() else folder_size(path)
    elif entry.scheme in ("dir", "file") and here:
        path = Path(entry.location)
        where = str(path)
        size = path.stat().st_size if path.is_file() else folder_size(path)
    return LocalState(
        name=entry.name,
        kind=entry.kind,
        family=entry.family,
        source=entry.source,
        present=here,
        size=size,
        where=where,
        fix=""
        if here
        else fix(entry, registry_path)
        + ("  (the weights here are not the ones its sha256 pins)" if unpinned else ""),
    )


_SHA256 = re.compile(r"[0-9a-f]{64}")


def pin_here(snapshot: Path, weight: str = "") -> str:
    """The pin of ``weight`` in a hub snapshot (registry/digest.py's rule), each file's sha256
    read from the blob name it links to (huggingface_hub names an LFS blob by it); a file
    that is no such link (a copy, on a disk without symlinks) is hashed."""

    def blob_sha256(path: Path) -> str:
        if path.is_symlink():
            name = Path(os.readlink(path)).name
            if _SHA256.fullmatch(name):
                return name
        return file_sha256(path)

    return sha256_at(snapshot, weight, blob_sha256)


def fix(entry: ModelEntry, registry_path: Path | None = None) -> str:
    """The step that brings ``entry``'s weights to this machine."""
    if entry.scheme == "hub":
        flag = f" --registry {registry_path}" if registry_path else ""
        return f"sfumato models pull {entry.name}{flag}"
    if entry.scheme == "dir":
        return f"copy the diffusers folder (model_index.json and its parts) to {entry.location}"
    if entry.scheme == "file":
        return f"copy the checkpoint to {entry.location}"
    return ""  # tiny: built on first use


def states(registry: Registry) -> list[LocalState]:
    return [local_state(e, registry.path) for e in registry.entries.values()]
