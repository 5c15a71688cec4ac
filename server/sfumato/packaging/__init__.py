"""``sfumato package blender|krita``: build what a user installs into their host app.

Both packages carry the protocol and the client (pure Python) plus msgpack and websockets,
never torch. One module per host."""

from __future__ import annotations

from pathlib import Path


def build(host: str, out: Path) -> Path:
    """Build the zip for ``host`` into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    if host == "blender":
        from .blender import build_blender

        return build_blender(out)
    if host == "krita":
        from .krita import build_krita

        return build_krita(out)
    raise ValueError(f"unknown host {host!r}; choose blender or krita")
