"""The README's `./dev demo`, end to end: a tiny-model server, one image through the client,
then Blender (the bpy environment `./dev` makes) textures a scene through the installed add-on
and renders it. The demo is what a new user runs first; it must not rot unseen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sfumato.imageio import read_image

from ..ci import missing

REPO = Path(__file__).resolve().parents[2]
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"


@pytest.mark.slow
def test_the_readme_demo_writes_both_pictures(tmp_path: Path) -> None:
    if not BLENDER_PYTHON.exists():
        missing(f"{BLENDER_PYTHON} is missing", "run ./dev setup (it makes the bpy environments)")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "demo", "--out", str(out),
         "--blender-python", str(BLENDER_PYTHON)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "textured 4 objects" in proc.stdout, proc.stdout[-3000:]
    for picture in (out / "demo.png", out / "blender" / "blender-demo.png"):
        pixels = read_image(picture)
        assert pixels.ndim == 3 and pixels.shape[0] > 0, picture
        assert np.ptp(pixels) > 0, f"{picture} is one flat colour"
    assert (out / "blender" / "blender-demo.blend").is_file()
