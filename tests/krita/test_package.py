"""``sfumato package krita``: the zip Krita's "Import Python Plugin from File" takes, with
only pure Python inside that runs on 3.10 (Krita 5.2's Windows/macOS builds) and up."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sfumato.packaging.krita import build_krita, isolate

from ..ci import missing

SERVER = Path(__file__).resolve().parents[2] / "server" / "sfumato"

# Runs in a bare interpreter (-I -S: no site-packages) with only the unpacked zip on the path:
# the vendored client must talk to nothing but what the zip carries, under private names.
PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from sfumato_krita._vendor import msgpack, websockets
from sfumato_krita._vendor.sfumato.client import Client, make_job
from sfumato_krita._vendor.sfumato.hostsession import HostSession  # the host session, too
from sfumato_krita._vendor.sfumato.protocol import encode_bytes, decode_client_message
import sfumato_krita.model, sfumato_krita.jobs  # the Qt-free half of the plugin
job = make_job("generate", id="j1", prompt="x", width=64, height=64)
assert decode_client_message(encode_bytes(job)) == job
assert msgpack.Packer.__module__ == "sfumato_krita._vendor.msgpack.fallback", msgpack.Packer
assert websockets.__file__.startswith(sys.argv[1]), websockets.__file__
bare = sorted(m for m in sys.modules if m.split(".")[0] in ("sfumato", "msgpack", "websockets"))
assert not bare, bare
print("ok", sys.version_info[:2])
"""

# Another plugin's copies first on sys.path (as krita-ai-diffusion puts its vendored
# websockets there): ours must not pick them up, nor theirs ours, in either order.
RIVAL = """
import sys
root, rival, order = sys.argv[1:4]
sys.path.insert(0, root)
def theirs():
    sys.path.insert(0, rival)
    import msgpack, websockets
    return msgpack.MARKER, websockets.MARKER
def ours():
    from sfumato_krita._vendor.sfumato.client import Client
    from sfumato_krita._vendor.sfumato.protocol import encode_bytes, decode_server_message
    from sfumato_krita._vendor import websockets
    from sfumato_krita._vendor.sfumato.protocol import Welcome
    w = Welcome("s", 1, ("generate",))
    assert decode_server_message(encode_bytes(w)) == w
    return websockets.__version__
first, second = (theirs, ours) if order == "theirs-first" else (ours, theirs)
a, b = first(), second()
marks = a if order == "theirs-first" else b
assert marks == ("rival-msgpack", "rival-websockets"), marks
import msgpack, websockets
assert (msgpack.MARKER, websockets.MARKER) == marks  # theirs stays theirs
print("ok", a, b)
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
    vendored = zipfile.ZipFile(plugin_zip).read("sfumato_krita/_vendor/sfumato/client.py")
    assert vendored == isolate((SERVER / "client.py").read_bytes()), "copied, imports private"
    assert "sfumato_krita/_vendor/sfumato/protocol/codec.py" in names
    assert "sfumato_krita/_vendor/sfumato/engine/__init__.py" not in names  # never the server


BARE = re.compile(r"^\s*(from|import)\s+(sfumato|msgpack|websockets)\b", re.M)


def test_no_shipped_module_imports_a_vendored_package_by_its_public_name(
    plugin_zip: Path,
) -> None:
    """Issue 10 item 2: every import of sfumato, msgpack and websockets in the zip is
    private, so another plugin's copies (on sys.path, in sys.modules) never mix with ours."""
    with zipfile.ZipFile(plugin_zip) as z:
        sources = {n: z.read(n).decode() for n in z.namelist() if n.endswith(".py")}
    assert len(sources) > 50
    for name, text in sources.items():
        code = "\n".join(line for line in text.splitlines() if not _in_docs(line))
        assert not BARE.search(code), (name, BARE.search(code))
    plugin = sources["sfumato_krita/jobs.py"]
    assert "from sfumato_krita._vendor.sfumato.protocol import" in plugin
    codec = sources["sfumato_krita/_vendor/sfumato/protocol/codec.py"]
    assert "from sfumato_krita._vendor import msgpack" in codec


def _in_docs(line: str) -> bool:
    return line.startswith("        ")  # websockets' docstring examples (indented 8)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (b"import msgpack\n", b"from sfumato_krita._vendor import msgpack\n"),
        (b"import msgpack as mp  # x\n", b"from sfumato_krita._vendor import msgpack as mp  # x\n"),
        (b"    from websockets.sync.client import (\n",
         b"    from sfumato_krita._vendor.websockets.sync.client import (\n"),
        (b"from sfumato import __version__\n", b"from sfumato_krita._vendor.sfumato import __version__\n"),
        (b"import msgpackx\nfrom .x import y\nimport sfumato_krita\n",
         b"import msgpackx\nfrom .x import y\nimport sfumato_krita\n"),
    ],
)  # fmt: skip
def test_isolate_rewrites_absolute_imports_only(source: bytes, expected: bytes) -> None:
    assert isolate(source) == expected


def test_isolate_refuses_what_it_cannot_rewrite() -> None:
    with pytest.raises(ValueError, match="import it with from"):
        isolate(b"import websockets.sync\n")
    with pytest.raises(ValueError, match="import it with from"):
        isolate(b"import msgpack, json\n")


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYENV_VERSION"] = "3.10.13" if python == "python3.10" else env.get("PYENV_VERSION", "")
    run = subprocess.run(
        [exe, "-I", "-S", "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")
    if python == "python3.10":
        assert "(3, 10)" in run.stdout, run.stdout


@pytest.mark.parametrize("order", ["theirs-first", "ours-first"])
def test_another_plugins_websockets_and_msgpack_do_not_mix_with_ours(
    plugin_zip: Path, tmp_path: Path, order: str
) -> None:
    zipfile.ZipFile(plugin_zip).extractall(tmp_path / "root")
    rival = tmp_path / "rival"
    for name in ("msgpack", "websockets"):
        (rival / name).mkdir(parents=True)
        (rival / name / "__init__.py").write_text(f"MARKER = 'rival-{name}'\n__version__ = '0'\n")
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RIVAL, str(tmp_path / "root"), str(rival), order],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok"), run.stdout
