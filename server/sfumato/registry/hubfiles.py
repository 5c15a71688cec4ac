"""Which files of a hub repo make a model Sfumato can load, and where the hub cache keeps them.

Kept apart from pull.py because this part is pure: a repo's file list in, the files to fetch
out, and the Hugging Face cache's layout (``models--org--name/{blobs,snapshots,refs}``) as
paths. A public SD repo holds far more than diffusers loads — the original single-file
checkpoints at its root (4–7 GB each), fp16 / non-EMA variants of every weight, .bin twins of
every .safetensors, a safety checker Sfumato never runs — so fetching a whole snapshot would
cost several times the download the model needs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .digest import is_weight

CONFIG_SUFFIXES = (".json", ".txt")  # model/scheduler configs, tokenizers (vocab, merges)
SKIPPED_FOLDERS = frozenset({"safety_checker"})  # loaded with safety_checker=None (loader.py)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub snapshot, as the hub's model API describes it."""

    path: str  # relative to the repo root, posix
    size: int
    blob: str  # the cache's blob name: the LFS sha256, or the git blob id of a small file
    sha256: str = ""  # of the content, for LFS files (every weight file); "" when unknown


@dataclass(frozen=True)
class Snapshot:
    """One commit of a hub repo and the files Sfumato fetches from it."""

    repo: str
    commit: str
    files: tuple[RemoteFile, ...]
    # every file of the commit (path → blob name), fetched or not: what a file already in the
    # cache must match to stay in this commit's snapshot
    blobs: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _is_variant(name: str) -> bool:
    """``x.fp16.safetensors``, ``x.non_ema.bin``, ``x.fp16-00001-of-00002.safetensors``."""
    return "." in PurePosixPath(name).stem


def select(paths: Iterable[str], components: set[str] | None = None) -> list[str]:
    """The files of a repo that a diffusers loader needs, in the repo's order.

    Configs and tokenizer files everywhere; per folder, the weights in diffusers' own naming:
    the plain (non-variant) ``.safetensors`` files, or the plain ``.bin`` files where a folder
    has no safetensors. In a pipeline repo (one with ``model_index.json``) the root's weight
    files are single-file checkpoints (not what ``from_pretrained`` reads) and are left out,
    as is the safety checker; ``components`` (the parts model_index.json names) leaves out the
    other folders too (SDXL's repo also holds an older VAE and ONNX exports)."""
    paths = [p for p in paths if not PurePosixPath(p).name.startswith(".")]
    pipeline = "model_index.json" in paths
    if pipeline and components is not None:
        paths = [p for p in paths if "/" not in p or PurePosixPath(p).parts[0] in components]
    weights: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        folder = str(PurePosixPath(path).parent)
        if not is_weight(path) or _is_variant(PurePosixPath(path).name):
            continue
        if (pipeline and folder == ".") or PurePosixPath(path).parts[0] in SKIPPED_FOLDERS:
            continue
        weights[folder].append(path)
    keep: set[str] = set()
    for files in weights.values():
        for suffix in (".safetensors", ".bin"):
            chosen = [f for f in files if f.endswith(suffix)]
            if chosen:
                keep.update(chosen)
                break
    return [p for p in paths if p in keep or p.endswith(CONFIG_SUFFIXES)]


def select_weight(paths: Iterable[str], weight: str) -> list[str]:
    """What an entry with a ``weight`` loads from a shared repo: that file alone, or the
    folder's configs and one plain weight format (``select`` inside it: an encoder folder
    holding ``model.safetensors`` and its ``pytorch_model.bin`` twin gets the first); the
    engine reads nothing beside it (engine/references.py: ``hf_hub_download`` of the file,
    ``from_pretrained(subfolder=…)`` of the folder). [] when the repo has no such path."""
    paths = list(paths)
    weight = weight.strip("/")
    if weight in paths:
        return [weight]
    return select([p for p in paths if p.startswith(weight + "/")])


def snapshot_from_api(
    repo: str,
    commit: str,
    siblings: Iterable[object],
    components: set[str] | None = None,
    weight: str = "",
) -> Snapshot:
    """A :class:`Snapshot` of the selected files from huggingface_hub's ``RepoSibling`` list
    (``weight``: only what an entry with that sub-path loads, see ``select_weight``)."""
    by_path = {getattr(s, "rfilename", ""): s for s in siblings}
    blobs = {
        path: _lfs_sha256(sib) or getattr(sib, "blob_id", None) or ""
        for path, sib in by_path.items()
    }
    files = []
    for path in select_weight(by_path, weight) if weight else select(by_path, components):
        sib = by_path[path]
        lfs = getattr(sib, "lfs", None)
        size = getattr(sib, "size", None)
        if size is None and lfs is not None:
            size = lfs.get("size") if isinstance(lfs, dict) else getattr(lfs, "size", None)
        sha256 = _lfs_sha256(sib)
        files.append(RemoteFile(path=path, size=int(size or 0), blob=blobs[path], sha256=sha256))
    return Snapshot(repo=repo, commit=commit, files=tuple(files), blobs=blobs)


def _lfs_sha256(sibling: object) -> str:
    lfs = getattr(sibling, "lfs", None)
    return (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", "")) or ""


def components(model_index: str) -> set[str]:
    """The parts a pipeline's ``model_index.json`` names (``"unet": ["diffusers", …]``);
    parts set to null are not loaded."""
    data = json.loads(model_index)
    return {k for k, v in data.items() if isinstance(v, list) and v and v[0] is not None}


def repo_folder(cache: Path, repo: str) -> Path:
    """``<cache>/models--org--name``: huggingface_hub's folder for a model repo."""
    return Path(cache) / ("models--" + repo.replace("/", "--"))


def cached_snapshot(cache: Path, repo: str, revision: str = "main") -> Path | None:
    """The snapshot folder ``refs/<revision>`` points at (else the newest), or None."""
    folder = repo_folder(cache, repo)
    ref = folder / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if (folder / "snapshots" / commit).is_dir():
            return folder / "snapshots" / commit
    snapshots = folder / "snapshots"
    found = (
        sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    )
    return found[-1] if found else None


def has_weight(snapshot: Path, weight: str) -> bool:
    """Whether a snapshot holds an entry's ``weight``: that file, or that folder with a weight
    file in it ("" = the snapshot itself); a folder of configs alone loads nothing."""
    target = Path(snapshot) / weight if weight else Path(snapshot)
    if target.is_file():
        return True
    return target.is_dir() and any(is_weight(p.name) and p.is_file() for p in target.rglob("*"))


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (a snapshot's symlinks counted as their blobs)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
