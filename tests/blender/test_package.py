"""The zip users install: what it holds, and that Blender installs and enables it."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import bpy
import pytest
import tomllib

from .conftest import ADDON, SITE

# What the zip must serve: every platform Blender ships, every Python of a claimed release
# (4.2 … 5.0 embed 3.11; 5.1 … 5.2 embed 3.13), and the releases tested (./dev BLENDERS).
PLATFORMS = {"linux-x64": ("manylinux", "_x86_64"), "windows-x64": ("win_amd64",),
             "macos-arm64": ("macosx", "_arm64"), "macos-x64": ("macosx", "_x86_64")}  # fmt: skip
PYTHONS = ("cp311", "cp313")
_DEV = (Path(__file__).resolve().parents[2] / "dev").read_text()
TESTED = tuple(
    tuple(int(x) for x in release.split(".")) for release in re.findall(r'"(\d+\.\d+) bpy==', _DEV)
)


def test_manifest_is_a_blender_extension_with_its_wheels(extension_zip: Path) -> None:
    with zipfile.ZipFile(extension_zip) as z:
        names = set(z.namelist())
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert manifest["id"] == "sfumato" and manifest["type"] == "add-on"
    assert manifest["schema_version"] == "1.0.0" and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"network", "files"}
    assert set(manifest["platforms"]) == set(PLATFORMS)
    wheels = [w.removeprefix("./") for w in manifest["wheels"]]
    assert set(wheels) <= names
    assert {"__init__.py", "bridge.py", "passes.py", "scene.py", "operators.py"} <= names
    for package in ("msgpack", "websockets"):
        own = [w for w in wheels if w.startswith(f"wheels/{package}-")]
        for tags in PLATFORMS.values():
            for python in PYTHONS:  # exactly one wheel per platform and Python
                found = [w for w in own if f"-{python}-{python}-" in w]
                found = [w for w in found if all(t in w.split("-")[-1] for t in tags)]
                assert len(found) == 1, (package, tags, python, found)
        assert len(own) == len(PLATFORMS) * len(PYTHONS), own  # no universal one beside them


def test_manifest_claims_only_the_tested_releases(extension_zip: Path) -> None:
    """blender_version_max is exclusive: the claim ends right after the newest tested
    release, and the Blender running this test lies inside it."""
    with zipfile.ZipFile(extension_zip) as z:
        manifest = tomllib.loads(z.read("blender_manifest.toml").decode())
    assert len(TESTED) >= 2, f"could not read the tested releases from ./dev: {TESTED}"
    low = tuple(int(x) for x in manifest["blender_version_min"].split("."))
    high = tuple(int(x) for x in manifest["blender_version_max"].split("."))
    assert low[:2] == min(TESTED) and high == (*max(TESTED)[:1], max(TESTED)[1] + 1, 0)
    assert low <= tuple(bpy.app.version) < high
    assert tuple(bpy.app.version[:2]) in TESTED, "run this suite only in a tested release"


def test_sfumato_wheel_holds_only_the_client_side(extension_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(extension_zip) as z:
        (wheel,) = [n for n in z.namelist() if n.startswith("wheels/sfumato-")]
        z.extract(wheel, tmp_path)
    with zipfile.ZipFile(tmp_path / wheel) as w:
        modules = {n for n in w.namelist() if n.endswith(".py")}
        record = w.read(next(n for n in w.namelist() if n.endswith("RECORD"))).decode()
    assert "sfumato/client.py" in modules and "sfumato/protocol/codec.py" in modules
    assert not [m for m in modules if m.split("/")[1] in {"engine", "service", "cli"}]
    assert all(f"{m},sha256=" in record for m in modules)


def test_blender_installs_and_enables_it(installed: str) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.preferences.addon_enable(module=installed)
    try:
        assert installed == ADDON and hasattr(bpy.types.Scene, "sfumato")
        assert hasattr(bpy.ops.sfumato, "texture_from_view")
        python = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        site = SITE / "lib" / python / "site-packages"
        assert (site / "sfumato" / "client.py").is_file(), f"no sfumato wheel under {site}"
        assert not (site / "sfumato" / "engine").exists()
        assert "torch" not in sys.modules
        # the binary wheels for this very Python went in (their C parts import), and they
        # are the pinned versions the zip bundles
        import msgpack
        import websockets
        import websockets.speedups
        from msgpack import _cmsgpack  # noqa: F401

        assert msgpack.version == (1, 1, 2) and websockets.__version__ == "15.0.1"
        for module in (msgpack, websockets):
            assert site in Path(str(module.__file__)).resolve().parents, module.__file__
    finally:
        bpy.ops.preferences.addon_disable(module=installed)


@pytest.mark.parametrize("name", ["bridge", "jobs", "passes", "scene", "geometry", "props"])
def test_modules_never_import_torch(name: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "blender_addon" / f"{name}.py").read_text()
    assert "import torch" not in source and "diffusers" not in source
