"""What the Blender benchmarks share: the add-on installed as users install it — the zip
built by the server environment (.venv), installed by Blender with its bundled wheels (a
Blender environment has no sfumato of its own) — and its modules by name."""

from __future__ import annotations

import importlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import bpy

REPO = Path(__file__).resolve().parents[1]
ADDON = "bl_ext.user_default.sfumato"


def install_addon() -> None:
    out = tempfile.mkdtemp(prefix="sfumato-bench-zip-")
    command = [str(REPO / ".venv" / "bin" / "python"), "-m", "sfumato.cli", "package", "blender"]
    built = subprocess.run([*command, "--out", out], capture_output=True, text=True, check=True)
    bpy.ops.extensions.package_install_files(
        filepath=built.stdout.strip().splitlines()[-1], repo="user_default", enable_on_install=True
    )


def module(name: str) -> Any:
    """The installed add-on's module ``name`` (passes, scene, texbake …)."""
    return importlib.import_module(f"{ADDON}.{name}")
