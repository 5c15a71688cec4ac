"""Moving a checked download into place: the Hugging Face cache's layout (blobs, snapshot
links, ``refs/main``) or a plain folder, each swapped in whole by renames, so a stop half way
never leaves a partial snapshot for a loader (or ``present``) to take for a complete one.

An entry with a ``weight`` (a file or folder of a repo several entries share, such as
h94/IP-Adapter) merges into the repo's current snapshot: the files outside its path are another
entry's and are kept when the new commit holds them unchanged (``kept``). Kept apart from
pull.py, which fetches and checks; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .digest import file_sha256
from .hubfiles import RemoteFile, Snapshot, cached_snapshot, repo_folder

Say = Callable[[str], None]


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def same(path: Path, f: RemoteFile) -> bool:
    """Whether ``path`` holds ``f``'s bytes: its sha256 (LFS) or git blob id (small files)."""
    if f.sha256:
        return file_sha256(path) == f.sha256
    if len(f.blob) == 40:
        data = path.read_bytes()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == f.blob
    return False


def into_cache(
    snapshot: Snapshot,
    local: dict[str, Path],
    cache: Path,
    stage: Path,
    weight: str = "",
    say: Say = print,
) -> Path:
    """Move the files into huggingface_hub's layout, then switch ``refs/main`` to them.

    The snapshot folder is assembled in the staging folder (its links already relative to
    where it will be) and renamed into ``snapshots/``, so a stop half way never leaves a
    partial snapshot there for a loader (or ``present``) to take for a complete one. With a
    ``weight``, the current snapshot's files outside that path come along (``kept``)."""
    repo = repo_folder(cache, snapshot.repo)
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (repo / "snapshots").mkdir(exist_ok=True)
    final = repo / "snapshots" / snapshot.commit
    fresh = stage / "snapshot"
    shutil.rmtree(fresh, ignore_errors=True)
    keep = kept(snapshot, cached_snapshot(cache, snapshot.repo), weight, say) if weight else {}
    for rel, old in keep.items():
        link = fresh / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if old.is_symlink():  # snapshots/<commit>/<rel> → ../…/blobs/<blob>: the same depth
            os.symlink(os.readlink(old), link)
        else:
            try:
                os.link(old, link)
            except OSError:
                shutil.copy2(old, link)
    for f in snapshot.files:
        blob = blobs / (f.blob or f"sfumato-{snapshot.commit[:12]}-{f.path.replace('/', '--')}")
        if local[f.path] != blob:
            os.replace(local[f.path], blob)
        link = fresh / f.path
        link.parent.mkdir(parents=True, exist_ok=True)
        try:  # relative to the link's final place: snapshots/<commit>/<path>
            os.symlink(os.path.relpath(blob, (final / f.path).parent), link)
        except OSError:  # no symlinks (Windows without developer mode): a copy, as hf does
            shutil.copy2(blob, link)
    swap(fresh, final, stage / "old")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(snapshot.commit, encoding="utf-8")
    return final


def kept(snapshot: Snapshot, current: Path | None, weight: str, say: Say) -> dict[str, Path]:
    """The files of the repo's current snapshot that stay in the new one: those outside
    ``weight`` (another entry's), when the new commit holds them unchanged (always, at the same
    commit). The ones it changed stay only in the old snapshot, and the pull says so."""
    if current is None:
        return {}
    own = weight.strip("/")
    same_commit = current.name == snapshot.commit
    found: dict[str, Path] = {}
    dropped: list[str] = []
    for path in sorted(current.rglob("*")):
        rel = path.relative_to(current).as_posix()
        if path.is_dir() or rel == own or rel.startswith(own + "/"):
            continue
        if same_commit or unchanged(path, snapshot.blobs.get(rel, "")):
            found[rel] = path
        else:
            dropped.append(rel)
    if dropped:
        say(
            f"{len(dropped)} files of {current} are not in {snapshot.repo} @ "
            f"{snapshot.commit[:12]} as they were ({', '.join(dropped[:3])}"
            f"{', …' if len(dropped) > 3 else ''}): the entries using them need "
            "`sfumato models pull` again"
        )
    return found


def unchanged(path: Path, blob: str) -> bool:
    """Whether the cached ``path`` is the hub's ``blob`` (a link named by it, else its bytes)."""
    if not blob:
        return False
    if path.is_symlink():
        return Path(os.readlink(path)).name == blob
    return same(path, RemoteFile(path.name, size_of(path), blob, blob if len(blob) == 64 else ""))


def into_folder(local: dict[str, Path], dest: Path, stage: Path) -> Path:
    """Build the new folder beside the old one, then swap them in two renames."""
    fresh = stage / "folder"
    shutil.rmtree(fresh, ignore_errors=True)
    for rel, src in local.items():
        target = fresh / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_relative_to(stage):
            os.replace(src, target)
        else:
            try:  # a file of the old folder that is still current: link it, do not copy GBs
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
    swap(fresh, dest, stage / "old")
    return dest


def swap(fresh: Path, final: Path, old: Path) -> None:
    """``fresh`` becomes ``final`` in two renames; the replaced folder goes to ``old`` (in the
    staging folder, on the same disk) and is deleted."""
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(fresh, final)
    shutil.rmtree(old, ignore_errors=True)
