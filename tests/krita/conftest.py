"""Real Krita under Xvfb, with the plugin installed from the zip that ``sfumato package krita``
builds — by Krita's own *Import Python Plugin from File* (install_plugin/ drives it), as
docs/krita.md tells users — in a disposable profile (XDG_* folders in a temp dir;
BUILD-NOTES.md, Krita). The screen is 1600×1000, the size issue reports were made on.

Where Krita, kritarunner or Xvfb is missing every test here skips, saying which and how to
install them — and fails instead when ``CI`` is set (tests/ci.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..ci import missing
from ..conftest import RunningServer, running_server

HERE = Path(__file__).resolve().parent
TOOLS = ("krita", "kritarunner", "Xvfb")
INSTALL = (
    "apt-get install --no-install-recommends krita python3-pyqt5 python3-sip "
    "python3-pyqt5.qtwebsockets xvfb xauth (./dev setup does it when run as root)"
)
SCREEN = "1600x1000x24"


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass
class KritaEnv:
    root: Path
    env: dict[str, str]
    pykrita: Path
    zip_path: Path
    install: dict[str, Any]  # what the import helper saw (install_plugin/)

    def run_task(
        self, func: str, payload: dict[str, Any], timeout: float = 300, module: str = "krita_tasks"
    ) -> dict[str, Any]:
        """Run ``<module>.<func>`` (a module beside this file) in kritarunner; returns the JSON
        it wrote."""
        work = Path(self.root / "runs" / f"{func}-{len(list(self.root.glob('runs/*')))}")
        work.mkdir(parents=True)
        out = work / "out.json"
        (work / "in.json").write_text(json.dumps({**payload, "out": str(out)}), "utf-8")
        env = {**self.env, "SFUMATO_KRITA_IN": str(work / "in.json")}
        env["PYTHONPATH"] = f"{self.pykrita}{os.pathsep}{HERE}"
        cmd = ["kritarunner", "-s", module, "-f", func]
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=work
        )
        if not out.is_file():
            raise AssertionError(
                f"kritarunner wrote no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}"
            )
        result: dict[str, Any] = json.loads(out.read_text("utf-8"))
        assert result["ok"], result.get("error")
        return result


@pytest.fixture(scope="session")
def x_display() -> Iterator[str]:
    """One Xvfb for the session. ``-displayfd`` lets the server pick a free display itself:
    xvfb-run's ``-a`` trusts lock files, which processes killed on a timeout leave stale.
    ``-noreset``: an X server resets when its last client leaves, refusing the next one meanwhile."""
    absent = missing_tools()
    if absent:
        missing(f"the Krita tests need {', '.join(absent)}, not on PATH", INSTALL)
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", SCREEN, "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start (no display number on -displayfd)")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def krita_env(tmp_path_factory: pytest.TempPathFactory, x_display: str) -> KritaEnv:
    from sfumato.packaging.krita import build_krita

    root = tmp_path_factory.mktemp("krita")
    zip_path = build_krita(root / "dist")
    env = dict(os.environ, DISPLAY=x_display)
    for name in ("CONFIG", "DATA", "CACHE", "RUNTIME"):
        folder = root / name.lower()
        folder.mkdir(mode=0o700)
        env[f"XDG_{name}_HOME" if name != "RUNTIME" else "XDG_RUNTIME_DIR"] = str(folder)
    env.pop("SFUMATO_URL", None)
    # Krita's one-instance check is a local socket in the temp folder: a Krita another test run
    # of this user has open would take our start over and exit it silently, unless ours has a
    # temp folder of its own
    (root / "tmp").mkdir()
    env["TMPDIR"] = str(root / "tmp")
    pykrita = root / "data" / "krita" / "pykrita"
    report = import_plugin(env, pykrita, zip_path, root / "install.json")
    return KritaEnv(root, env, pykrita, zip_path, report)


def import_plugin(env: dict[str, str], pykrita: Path, zip_path: Path, out: Path) -> dict[str, Any]:
    """Install ``zip_path`` with Krita's Import Python Plugin from File, in the GUI; the
    helper plugin that presses it is removed again afterwards."""
    helper = HERE / "install_plugin"
    shutil.copytree(helper, pykrita, dirs_exist_ok=True)
    config = Path(env["XDG_CONFIG_HOME"]) / "kritarc"
    config.write_text("[python]\nenable_sfumato_install=true\n[General]\nshowsplash=false\n")
    log = run_gui({**env, "SFUMATO_INSTALL_ZIP": str(zip_path), "SFUMATO_INSTALL_OUT": str(out)})
    shutil.rmtree(pykrita / "sfumato_install")
    (pykrita / "sfumato_install.desktop").unlink()
    if not out.is_file():
        pytest.fail(f"the install helper wrote nothing:\n{log}")
    report: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return report


def run_gui(env: dict[str, str], timeout: float = 280) -> str:
    """Run the full Krita GUI until a helper plugin quits it; returns the end of its log."""
    try:
        proc = subprocess.run(
            ["krita", "--nosplash"], env=env, capture_output=True, text=True, timeout=timeout
        )
        return proc.stdout[-2000:] + proc.stderr[-3000:]
    except subprocess.TimeoutExpired as exc:
        return f"Krita did not quit within {exc.timeout} s"


@pytest.fixture(scope="module")
def krita_server(
    krita_env: KritaEnv, tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[RunningServer]:
    """A real ``sfumato serve`` on the tiny model (started only when Krita is here)."""
    with running_server(tmp_path_factory.mktemp("krita-results"), model_cache) as server:
        yield server
