"""Whether the server has a registry entry's weights on its disk now — told to clients as
``ModelInfo.available`` (docs/protocol.md section 3), so a model list can mark the models a job
would fail with ``model_unavailable`` before anyone tries (issue 18 item 6).

File checks only: no torch, no download, no hub request. A ``tiny`` model is built on first
use, so it is always available; a ``dir`` base model needs its ``model_index.json`` (a LoRA or
ControlNet folder only needs to exist); a ``file`` must exist; a ``hub`` repo must have a
snapshot in the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``); a hub entry with a ``weight`` (an IP-Adapter or image encoder in
a repo several entries share) needs that file or folder in the snapshot ``refs/main`` names,
the one its loader reads, not just any copy of the repo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import ModelEntry


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home) / "hub"


def present(entry: ModelEntry) -> bool:
    scheme, location = entry.scheme, entry.location
    if scheme == "tiny":
        return True
    if scheme == "dir":
        folder = Path(location)
        return (folder / "model_index.json").is_file() if entry.kind == "base" else folder.is_dir()
    if scheme == "file":
        return Path(location).is_file()
    if entry.weight:
        from .hubfiles import cached_snapshot, has_weight

        snap = cached_snapshot(hub_cache(), location)
        return snap is not None and has_weight(snap, entry.weight)
    snapshots = hub_cache() / ("models--" + location.replace("/", "--")) / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())
