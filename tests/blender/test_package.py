"""The zip users install: what it holds, and that Blender installs and enables it."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import bpy
import pytest
import tomllib

from sfumato.packaging.blender import PLATFORMS

from .conftest import ADDON


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
        for platform in ("manylinux", "win_amd64", "macosx_11_0_arm64", "x86_64"):
            found = [w for w in wheels if w.startswith(f"wheels/{package}-") and platform in w]
            assert found and all("cp311" in w for w in found), (package, platform)
        assert not [w for w in wheels if w.startswith(f"wheels/{package}-") and "none-any" in w]


def test_sfumato_wheel_holds_only_the_client_side(extension_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(extension_zip) as z:
        (wheel,) = [n for n in z.namelist() if n.startswith("wheels/sfumato-")]
        z.extract(wheel, tmp_path)
    with zipfile.ZipFile(tmp_path / wheel) as w:
        modules = {n for n in w.namelist() if n.endswith(".py")}
        record = w.read(next(n for n in w.namelist() if n.endswith("RECORD"))).decode()
    assert "sfumato/client.py" in modules and "sfumato/protocol/codec.py" in modules
    assert not [m for m in modules if m.split("/")[1] in {"engine", "service", "cli.py"}]
    assert all(f"{m},sha256=" in record for m in modules)


def test_blender_installs_and_enables_it(installed: str) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.preferences.addon_enable(module=installed)
    try:
        assert installed == ADDON and hasattr(bpy.types.Scene, "sfumato")
        assert hasattr(bpy.ops.sfumato, "texture_from_view")
        site = Path(bpy.utils.user_resource("EXTENSIONS")) / ".local" / "lib"
        clients = list(site.glob("python3.*/site-packages/sfumato/client.py"))
        assert clients, f"Blender did not install the sfumato wheel under {site}"
        assert not list(site.glob("python3.*/site-packages/sfumato/engine"))
        assert "torch" not in sys.modules
    finally:
        bpy.ops.preferences.addon_disable(module=installed)


@pytest.mark.parametrize("name", ["bridge", "jobs", "passes", "scene", "geometry", "props"])
def test_modules_never_import_torch(name: str) -> None:
    source = (Path(__file__).resolve().parents[2] / "blender_addon" / f"{name}.py").read_text()
    assert "import torch" not in source and "diffusers" not in source
