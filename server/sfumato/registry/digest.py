"""What a registry entry's ``sha256`` pin is computed over, without torch.

A ``file:`` source hashes as the file's sha256. A folder (``dir:``, a hub snapshot, a tiny
build) hashes as the sha256 of its manifest: one line ``<sha256>  <relative path>`` per weight
file, sorted by path (what ``sha256sum`` prints for the sorted files). The engine checks pins
with this before weights make an image (engine/hashing.py, which caches the file hashes), and
``sfumato models pull`` checks a download with it before the download replaces anything, so
both sides must agree on every byte of this definition: it lives here, once.

An entry with a ``weight`` (an IP-Adapter file or image-encoder folder inside a shared hub
repo) hashes as that file or folder alone, paths in the manifest relative to it. ``pin_of``
states the whole rule over a listing (``path in the source → sha256``), so pull can check a
download before its files are where the engine looks; ``sha256_at`` is the same rule over
the files on disk (what the engine runs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
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


def pin_of(files: Mapping[str, str], weight: str = "") -> str:
    """The pin of the weights at ``weight`` ("" = the whole source) from a listing of the
    source's files (posix path relative to the source → sha256): a file's own sha256 when
    ``weight`` names one, else the manifest of the weight files under it, relative to it."""
    weight = weight.strip("/")
    if weight in files:
        return files[weight]
    prefix = f"{weight}/" if weight else ""
    return manifest_sha256(
        (path[len(prefix) :], digest)
        for path, digest in files.items()
        if path.startswith(prefix) and is_weight(path)
    )


def sha256_at(root: Path, weight: str = "", file_hash: Callable[[Path], str] = file_sha256) -> str:
    """``pin_of`` over what is on disk: ``root`` a file, or a folder whose weight files are
    found by walking it (symlinks followed, as a hub snapshot's are), hashed with
    ``file_hash`` (the engine passes its cached one). "" when ``root / weight`` is absent."""
    target = Path(root) / weight if weight else Path(root)
    if target.is_file():
        return pin_of({weight: file_hash(target)}, weight)
    if not target.is_dir():
        return ""
    files = sorted(p for p in target.rglob("*") if is_weight(p.name) and p.is_file())
    return pin_of({f.relative_to(target).as_posix(): file_hash(f) for f in files})
