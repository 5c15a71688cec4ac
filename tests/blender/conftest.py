"""Blender add-on tests: the real ``bpy`` module with the extension installed from the zip
that ``sfumato package blender`` builds, against a real ``sfumato serve`` subprocess on the
tiny model, run from the server's own environment (.venv: torch lives there, never here).

What is tested is what users install: the Blender environments (``.venv-blender-4.2``,
``-5.0``, ``-5.2``, one per claimed Blender release) hold bpy and the test tools only, so
``sfumato``, ``websockets`` and ``msgpack`` come from the wheels the zip bundles, installed by
Blender's own extension installer. The zip is built by the server environment (once per
``./dev test``, passed in ``$SFUMATO_BLENDER_ZIP``; else once per session).

Run with ``.venv-blender-5.2/bin/python -m pytest tests/blender`` (or -4.2, -5.0).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Before bpy is imported: Blender's user folders (extensions, preferences) go to a temp
# folder, so the tests never touch a real Blender setup and always start clean.
_USER = tempfile.mkdtemp(prefix="sfumato-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _USER
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import importlib  # noqa: E402
import importlib.util  # noqa: E402

from ..ci import missing  # noqa: E402

try:
    import bpy
except ImportError as error:  # in CI this fails the run (tests/ci.py)
    missing(
        f"the Blender tests need the bpy module, which {sys.executable} lacks ({error})",
        "./dev setup builds .venv-blender-4.2, -5.0 and -5.2 with it; run these tests with "
        ".venv-blender-5.2/bin/python -m pytest tests/blender",
        module_level=True,
    )

# The zip's wheels must be what the tests import: a copy of these in the environment itself
# (an editable sfumato, a newer websockets) would hide them, as it did once.
BUNDLED = ("sfumato", "websockets", "msgpack")
_HIDING = {n: s.origin for n in BUNDLED if (s := importlib.util.find_spec(n)) is not None}
if _HIDING:
    raise pytest.UsageError(
        f"this Blender environment ({sys.prefix}) has its own {', '.join(sorted(_HIDING))} "
        f"({', '.join(str(o) for o in _HIDING.values())}), which would hide the wheels the "
        "extension bundles: keep them off PYTHONPATH, or rebuild the environment with "
        "./dev setup (bpy and the test tools only)"
    )

REPO = Path(__file__).resolve().parents[2]
SERVER_PYTHON = REPO / ".venv" / "bin" / "python"
# The environment "Start a local server" starts `sfumato serve` from (test_localserver.py):
# this checkout's server environment unless $SFUMATO_SERVER_ENV names another.
SERVER_ENV = Path(os.environ.get("SFUMATO_SERVER_ENV") or REPO / ".venv")
ADDON = "bl_ext.user_default.sfumato"
# Where Blender's extension installer puts the wheels' packages.
SITE = (Path(bpy.utils.user_resource("EXTENSIONS")) / ".local").resolve()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_USER, ignore_errors=True)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    results: Path


def start_server(results: Path, cache: Path, *extra: str, timeout: float = 120.0) -> Server:
    """``sfumato serve --port 0`` from the server environment; returns once it listens."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("BLENDER_USER_RESOURCES", None)
    command = [str(SERVER_PYTHON), "-m", "sfumato.cli", "serve", "--port", "0"]
    command += ["--results", str(results), "--cache", str(cache), *extra]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith("Sfumato listening on "):
            return Server(line.split()[-1], proc, results)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"sfumato serve did not start (exit code {proc.wait()}); see its log")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the session, on the tiny model, offline."""
    if not SERVER_PYTHON.exists():
        pytest.fail(f"the server environment {SERVER_PYTHON} is missing: run ./dev setup")
    cache = tmp_path_factory.mktemp("model-cache")
    s = start_server(tmp_path_factory.mktemp("results"), cache)
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip users install: ``$SFUMATO_BLENDER_ZIP`` when ./dev built it for every Blender,
    else built here by ``sfumato package blender`` in the server environment (packaging is
    server-side code; this environment has no sfumato). Its wheels come from the wheel cache,
    filled by the first build that reached the package index."""
    given = os.environ.get("SFUMATO_BLENDER_ZIP")
    if given:
        return Path(given)
    if not SERVER_PYTHON.exists():
        pytest.fail(f"the server environment {SERVER_PYTHON} is missing: run ./dev setup")
    out = tmp_path_factory.mktemp("dist")
    command = [str(SERVER_PYTHON), "-m", "sfumato.cli", "package", "blender", "--out", str(out)]
    built = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if built.returncode != 0:
        pytest.fail(f"sfumato package blender failed:\n{built.stderr[-2000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def installed(extension_zip: Path) -> str:
    """Install the zip into the temp user folder once, with Blender's installer (which
    installs the wheels that fit this Python and platform); tests enable it in a fresh file."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(extension_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}, result
    assert ADDON in sys.modules, f"Blender installed {extension_zip.name} but did not enable it"
    for name in BUNDLED:  # from the extension's own site-packages, nowhere else
        origin = Path(str(importlib.import_module(name).__file__)).resolve()
        assert SITE in origin.parents, f"{name} was imported from {origin}, not from {SITE}"
    return ADDON


@pytest.fixture
def addon(installed: str) -> Iterator[ModuleType]:
    """A fresh, empty file with the add-on enabled (factory settings disable add-ons)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.preferences.addon_enable(module=installed) == {"FINISHED"}
    yield sys.modules[installed]
    bpy.ops.preferences.addon_disable(module=installed)


@pytest.fixture
def connected(addon: ModuleType, server: Server) -> ModuleType:
    """The add-on, pointed at the test server."""
    bpy.context.preferences.addons[ADDON].preferences.url = server.url
    return addon


def submodule(name: str) -> Any:
    return sys.modules[f"{ADDON}.{name}"]


def runtime() -> Any:
    """The add-on's session state (connection, running job): ``WindowManager.sfumato``."""
    return bpy.context.window_manager.sfumato


def track(pending: Any, *, fetched: bool = False) -> Any:
    """Make the add-on's session track ``pending`` as if it had been sent (``fetched``: and
    asked for again by a reconnect), without a server: for feeding the bridge events."""
    from sfumato.hostsession import JobRecord, JobState

    link = sys.modules[f"{ADDON}.bridge"].get()
    record = JobRecord(pending.job, pending, pending.label, fetched=fetched)
    record.state = JobState.SENT
    link.link.session.jobs[pending.job.id] = record
    rt = runtime()
    rt.busy, rt.job_id, rt.job_kind, rt.status, rt.error = (
        True,
        pending.job.id,
        pending.kind,
        "sent",
        "",
    )
    return link
