"""``sfumato package blender|krita|all``: build what a user installs into their host app.

Both packages carry the protocol and the client (pure Python) plus msgpack and websockets,
never torch. One module per host.

The plugins' sources are read from a source checkout (``blender_addon/``, ``krita_plugin/``
beside ``server/``) or, in an installed wheel, from ``sfumato/_plugins/`` where setup.py's
build step copies them — so a user who ran ``pip install sfumato`` can build both zips too.
"""

from __future__ import annotations

from pathlib import Path

HOSTS = ("blender", "krita")
PACKAGED = Path(__file__).resolve().parents[1] / "_plugins"  # in an installed wheel
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root, in a source checkout


def plugin_source(name: str) -> Path:
    """The folder ``blender_addon`` or ``krita_plugin``: the wheel's copy when installed,
    else the checkout's (a missing one is reported by each builder, with what to do)."""
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else CHECKOUT / name


def build_all(out: Path) -> list[Path]:
    """Both zips into ``out``, Blender's first."""
    return [build(host, out) for host in HOSTS]


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
