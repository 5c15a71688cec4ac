"""The registry file, read again when it changes, so that ``sfumato approve NAME`` (or a LoRA a
train job added, or a studio's own edit) takes effect without a restart.

The router calls :meth:`RegistryWatch.check` at each ``hello``, ``models`` request and job
admission: one ``stat`` of the file (a few µs). When its inode, size or modification time
changed, the file is parsed again (a few ms) and, only if the whole of it is valid, replaces the
registry at once — admission, ``welcome`` and ``models`` use the new one from that message on.
A file that cannot be used (bad TOML, a bad entry, the server's default model gone, the file
missing) is logged once, with the reason and the fix, and the registry in use is kept.

The engine takes the new registry between jobs (``Worker.use_registry``): what it has loaded
stays loaded, unless an entry it may have loaded changed its weights (source, pin, …) or left.
The default model is the one the server started with: a new ``default`` applies at a restart.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from ..protocol.errors import SfumatoError
from ..registry import ModelEntry, Registry

log = logging.getLogger("sfumato.server")
Stamp = tuple[int, int, int]  # inode, size, mtime in ns: os.replace gives a new inode


def stamp(path: Path) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def weights_changed(old: Registry, new: Registry) -> tuple[str, ...]:
    """Entries of ``old`` that ``new`` drops or whose weights it changes (anything but
    approval, license and description): what an engine must not keep loaded."""

    def weights(entry: ModelEntry) -> ModelEntry:  # policy set alike: entries compare by weights
        return replace(entry, approved=True, license="", description="")

    return tuple(
        name
        for name, entry in old.entries.items()
        if name not in new.entries or weights(new.entries[name]) != weights(entry)
    )


class RegistryWatch:
    """The server's registry, kept in step with its file (``path``; None: never changes)."""

    def __init__(self, registry: Registry, path: Path | None, default_model: str) -> None:
        self.registry = registry
        self.path = path
        self.default_model = default_model
        self._seen = stamp(path) if path is not None else None

    def check(self) -> Registry | None:
        """The new registry if the file changed and is valid (the caller installs it), else
        None: unchanged, or unusable (logged once per change, the old one kept)."""
        if self.path is None:
            return None
        now = stamp(self.path)
        if now == self._seen:
            return None
        self._seen = now
        try:
            if now is None:
                raise FileNotFoundError(f"{self.path} is gone")
            new = Registry.load(self.path)
            default = new.get(self.default_model)
            if default.kind != "base":
                raise ValueError(f"the server's default model {default.name!r} is a {default.kind}")
        except (SfumatoError, ValueError, OSError) as exc:
            log.warning(
                "registry %s changed but cannot be used: %s. The server keeps serving the "
                "registry it read before; fix the file (`sfumato models --registry %s` checks "
                "it) and it is read again at the next hello, job or models request",
                self.path, exc, self.path,
            )  # fmt: skip
            return None
        before = {name: e.approved for name, e in self.registry.entries.items()}
        added = [n for n in new.entries if n not in before]
        approved = [n for n, e in new.entries.items() if n in before and e.approved != before[n]]
        removed = [n for n in before if n not in new.entries]
        log.info(
            "registry %s read again: %d entries (added: %s; approval changed: %s; removed: %s)",
            self.path, len(new.entries), ", ".join(added) or "none",
            ", ".join(approved) or "none", ", ".join(removed) or "none",
        )  # fmt: skip
        self.registry = new
        return new
