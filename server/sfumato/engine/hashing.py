"""Weights hashes: what content credentials record, and what an approved registry entry's
``sha256`` is checked against before its weights make an image.

A ``file:`` source hashes as the file's sha256. A folder (``dir:``, a hub snapshot, a tiny
build) hashes as the sha256 of its manifest: one line ``<sha256>  <relative path>`` per weight
file, sorted by path (registry/digest.py, which ``sfumato models pull`` checks with too). An
entry with a ``weight`` (an IP-Adapter file or image encoder folder inside its source) hashes
as that file or folder alone: what the engine loads, so two entries sharing one hub repo keep
their own hashes. Hashing gigabytes takes seconds, so results are cached on disk by path, size
and modification time, in one file that every process sharing the cache folder writes (the
Ray replicas, a front door, ``sfumato models``): each write merges what is there and goes
through a name of its own, so they never trip over each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from ..registry import ModelEntry
from ..registry.digest import WEIGHT_SUFFIXES, file_sha256, sha256_at
from .errors import ModelUnavailable
from .tiny import tiny_dir

__all__ = ["WEIGHT_SUFFIXES", "WeightHashes", "file_sha256"]

log = logging.getLogger(__name__)


class WeightHashes:
    def __init__(self, cache_dir: Path) -> None:
        self._file = Path(cache_dir) / "weight-hashes.json"
        self._lock = threading.Lock()
        self._known: dict[str, str] = self._read()
        self.cache_dir = Path(cache_dir)
        # hub lookups are not free: each source's root folder, once (entries sharing a hub
        # repo share it; their ``weight`` is a path inside)
        self._locations: dict[str, Path | None] = {}

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
            self._save()
        return digest

    def _read(self) -> dict[str, str]:
        try:
            known = json.loads(self._file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: a cache, rebuilt as it goes
            return {}
        return {str(k): str(v) for k, v in known.items()} if isinstance(known, dict) else {}

    def _save(self) -> None:
        """Best effort (a cache): the file's entries merged with ours, written under a name of
        this write's own and renamed over it, so concurrent writers each leave a whole file."""
        tmp = ""
        try:
            self._known = {**self._read(), **self._known}
            self._file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=".weight-hashes-", suffix=".tmp", dir=self._file.parent
            )
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._known, out, indent=1)
            os.replace(tmp, self._file)
        except OSError as exc:
            log.warning(
                "could not save the weights hash cache %s (%s): hashing again next start",
                self._file,
                exc,
            )
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _location(self, entry: ModelEntry) -> Path | None:
        if self._locations.get(entry.source) is None:
            self._locations[entry.source] = self._resolve(entry)
        return self._locations[entry.source]

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
