"""Weights hashes: what content credentials record, and what an approved registry entry's
``sha256`` is checked against before its weights make an image.

A ``file:`` source hashes as the file's sha256. A folder (``dir:``, a hub snapshot, a tiny
build) hashes as the sha256 of its manifest: one line ``<sha256>  <relative path>`` per weight
file, sorted by path (registry/digest.py, which ``sfumato models pull`` checks with too). An
entry with a ``weight`` (an IP-Adapter file or image encoder folder inside its source) hashes
as that file or folder alone: what the engine loads, so two entries sharing one hub repo keep
their own hashes. Hashing gigabytes takes seconds, so results are cached on disk by path, size
and modification time.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from ..registry import ModelEntry
from ..registry.digest import WEIGHT_SUFFIXES, file_sha256, sha256_at
from .errors import ModelUnavailable
from .tiny import tiny_dir

__all__ = ["WEIGHT_SUFFIXES", "WeightHashes", "file_sha256"]


class WeightHashes:
    def __init__(self, cache_dir: Path) -> None:
        self._file = Path(cache_dir) / "weight-hashes.json"
        self._lock = threading.Lock()
        try:
            self._known: dict[str, str] = json.loads(self._file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            self._known = {}
        self.cache_dir = Path(cache_dir)
        # hub lookups are not free: once per (source, weight); the source's root folder
        self._locations: dict[tuple[str, str], Path | None] = {}

    def verify(self, entries: Iterable[ModelEntry], field: str = "params.model") -> dict[str, str]:
        """Hash each entry's weights; an entry whose registry ``sha256`` differs is refused
        (``model_unavailable`` at ``field``, the job field that asked for it)."""
        out = {}
        for entry in entries:
            digest = self.of(entry)
            if entry.sha256 and digest and digest != entry.sha256.lower():
                raise ModelUnavailable(
                    entry.name,
                    f"the weights of {entry.name!r} do not match the registry's sha256 "
                    f"({digest[:16]}… found, {entry.sha256[:16]}… approved): they changed since "
                    "approval. Restore the approved weights or have the entry re-approved",
                    field=field,
                )
            out[entry.name] = digest
        return out

    def of(self, entry: ModelEntry) -> str:
        """The entry's weights hash, or "" when its weights are not on this machine."""
        root = self._location(entry)
        if root is None:
            return ""
        # registry/digest.py's rule, the one `sfumato models pull` checks a download with
        return sha256_at(root, entry.weight, self._file_hash)

    def _file_hash(self, path: Path) -> str:
        real = path.resolve()
        stat = real.stat()
        key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
        with self._lock:
            if key in self._known:
                return self._known[key]
        digest = file_sha256(real)
        with self._lock:
            self._known[key] = digest
            self._file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._known, indent=1), encoding="utf-8")
            os.replace(tmp, self._file)
        return digest

    def _location(self, entry: ModelEntry) -> Path | None:
        key = (entry.source, entry.weight)
        if self._locations.get(key) is None:
            self._locations[key] = self._resolve(entry)
        return self._locations[key]

    def _resolve(self, entry: ModelEntry) -> Path | None:
        if entry.scheme == "tiny":
            return tiny_dir(self.cache_dir, entry.location)
        if entry.scheme in ("dir", "file"):
            return Path(entry.location)
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(entry.location, local_files_only=True))
        except (OSError, ValueError):  # not in the local cache: nothing to hash (loading says why)
            return None
