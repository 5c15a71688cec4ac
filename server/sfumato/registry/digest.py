"""What a registry entry's ``sha256`` pin is computed over, without torch.

A ``file:`` source hashes as the file's sha256. A folder (``dir:``, a hub snapshot, a tiny
build) hashes as the sha256 of its manifest: one line ``<sha256>  <relative path>`` per weight
file, sorted by path (what ``sha256sum`` prints for the sorted files). The engine checks pins
with this before weights make an image (engine/hashing.py, which caches the file hashes), and
``sfumato models pull`` checks a download with it before the download replaces anything, so
both sides must agree on every byte of this definition: it lives here, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
CHUNK = 8 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def is_weight(relative: str) -> bool:
    """Whether a file counts in a folder's manifest (configs and tokenizers do not)."""
    return relative.endswith(WEIGHT_SUFFIXES)


def manifest_sha256(files: Iterable[tuple[str, str]]) -> str:
    """The pin of a folder from ``(relative posix path, file sha256)`` pairs of its weight files.

    Sorted by path components, as ``sorted(Path…)`` orders them ("a/x" before "a-b/x"): the
    order pins were first computed in."""
    ordered = sorted(files, key=lambda item: item[0].split("/"))
    lines = "".join(f"{digest}  {rel}\n" for rel, digest in ordered)
    return hashlib.sha256(lines.encode()).hexdigest()


def folder_sha256(folder: Path, file_hash: Callable[[Path], str] = file_sha256) -> str:
    """The pin of ``folder``: its weight files found on disk (symlinks followed, as a hub
    snapshot's are), hashed with ``file_hash`` (the engine passes its cached one)."""
    files = sorted(
        p for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()
    )
    return manifest_sha256((f.relative_to(folder).as_posix(), file_hash(f)) for f in files)
