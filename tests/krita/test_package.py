"""``sfumato package krita``: the zip Krita's "Import Python Plugin from File" takes, with
only pure Python inside that runs on 3.10 (Krita 5.2's Windows/macOS builds) and up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sfumato.packaging.krita import build_krita

from ..ci import missing

SERVER = Path(__file__).resolve().parents[2] / "server" / "sfumato"

# Runs in a bare interpreter (-I -S: no site-packages) with only the plugin's vendor folder:
# the vendored client must talk to nothing but what the zip carries.
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import msgpack, websockets
from sfumato.client import Client, make_job
from sfumato.protocol import encode_bytes, decode_client_message
job = make_job("generate", id="j1", prompt="x", width=64, height=64)
assert decode_client_message(encode_bytes(job)) == job
assert msgpack.Packer.__module__ == "msgpack.fallback", msgpack.Packer.__module__
assert websockets.__file__.startswith(sys.argv[1]), websockets.__file__
print("ok", sys.version_info[:2])
"""


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_krita(tmp_path_factory.mktemp("dist"))


def test_zip_root_is_the_desktop_file_and_the_package(plugin_zip: Path) -> None:
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {n.split("/")[0] for n in names} == {"sfumato.desktop", "sfumato_krita"}
    desktop = zipfile.ZipFile(plugin_zip).read("sfumato.desktop").decode()
    assert "X-KDE-Library=sfumato_krita" in desktop and "Krita/PythonPlugin" in desktop
    for module in ("__init__", "docker", "model", "jobs", "canvas", "bridge", "controller"):
        assert f"sfumato_krita/{module}.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".pyx", ".pyc"))]
    vendored = zipfile.ZipFile(plugin_zip).read("sfumato_krita/vendor/sfumato/client.py")
    assert vendored == (SERVER / "client.py").read_bytes(), "the client is copied as-is"
    assert "sfumato_krita/vendor/sfumato/protocol/codec.py" in names
    assert "sfumato_krita/vendor/sfumato/engine/__init__.py" not in names  # never the server


def test_the_build_is_reproducible(plugin_zip: Path, tmp_path: Path) -> None:
    again = build_krita(tmp_path)
    assert again.read_bytes() == plugin_zip.read_bytes()


@pytest.mark.parametrize("python", ["python3.10", sys.executable])
def test_vendored_client_runs_in_a_bare_interpreter(
    plugin_zip: Path, tmp_path: Path, python: str
) -> None:
    exe = shutil.which(python)
    if exe is None:
        missing(
            f"{python} is not on PATH (Krita 5.2's Windows and macOS builds embed Python 3.10)",
            "install it, e.g. pyenv install 3.10.13, or apt-get install python3.10",
        )
    zipfile.ZipFile(plugin_zip).extractall(tmp_path)
    vendor = tmp_path / "sfumato_krita" / "vendor"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYENV_VERSION"] = "3.10.13" if python == "python3.10" else env.get("PYENV_VERSION", "")
    run = subprocess.run(
        [exe, "-I", "-S", "-c", PROBE, str(vendor)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")
    if python == "python3.10":
        assert "(3, 10)" in run.stdout, run.stdout
