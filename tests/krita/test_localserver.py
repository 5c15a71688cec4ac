""" "Start a local server" in the docker (issue 15, item 4), in the full Krita GUI under Xvfb:
a helper plugin (launch_plugin/) types a wrong environment path and presses Start (the fix
is shown), then this checkout's server environment: a real ``sfumato serve`` starts, the
docker connects once it is ready, one tiny image is generated, Stop ends the process; a
server started again goes with Krita when it quits (``applicationClosing``). One Krita run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import HERE, KritaEnv, run_gui

REPO = HERE.parents[1]
SERVER_ENV = Path(os.environ.get("SFUMATO_SERVER_ENV") or REPO / ".venv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gone(pid: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@pytest.fixture(scope="module")
def launch(
    krita_env: KritaEnv, tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> dict[str, Any]:
    if not (SERVER_ENV / "bin" / "sfumato").exists():
        pytest.fail(f"the server environment {SERVER_ENV} is missing: run ./dev setup")
    tmp = tmp_path_factory.mktemp("launch")
    env = dict(krita_env.env)
    for name in ("config", "data"):  # the installed plugin and Krita's resource database
        shutil.copytree(krita_env.root / name, tmp / name)
    for name in ("cache", "runtime", "tmp"):
        (tmp / name).mkdir(mode=0o700)
    env.update(
        XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
        XDG_CACHE_HOME=str(tmp / "cache"), XDG_RUNTIME_DIR=str(tmp / "runtime"),
        TMPDIR=str(tmp / "tmp"), SFUMATO_URL=f"ws://127.0.0.1:{free_port()}",
        SFUMATO_SERVER_ENV=str(SERVER_ENV), SFUMATO_LAUNCH_TMP=str(tmp),
        SFUMATO_LAUNCH_OUT=str(tmp / "launch.json"),
        SFUMATO_LAUNCH_ARGS=f"--cache '{model_cache}' --results '{tmp / 'results'}'",
    )  # fmt: skip
    pykrita = tmp / "data" / "krita" / "pykrita"
    shutil.copytree(HERE / "launch_plugin", pykrita, dirs_exist_ok=True)
    (tmp / "config" / "kritarc").write_text(
        "[python]\nenable_sfumato_krita=true\nenable_sfumato_launch=true\n"
        "[General]\nshowsplash=false\n",
        "utf-8",
    )
    log = run_gui(env)
    out = tmp / "launch.json"
    assert out.is_file(), f"the launch helper wrote nothing:\n{log}"
    report: dict[str, Any] = json.loads(out.read_text("utf-8"))
    assert report["ok"], report.get("error", report)
    assert not report["exceptions"], report["exceptions"]
    report["url"] = env["SFUMATO_URL"]
    return report


def test_a_wrong_path_shows_the_fix(launch: dict[str, Any]) -> None:
    wrong = launch["wrong"]
    assert launch["folded"]  # the box takes one row until it is needed
    assert wrong["state"] == "not_found" and wrong["unfolded"], wrong
    assert "no-such-env does not exist" in wrong["text"] and "bin/sfumato" in wrong["text"]


def test_the_docker_starts_uses_and_stops_a_real_server(launch: dict[str, Any]) -> None:
    ready = launch["ready"]
    assert ready["state"] == "ready" and ready["owned"] and ready["pid"], ready
    assert ready["stop_enabled"] and not ready["start_enabled"], ready
    assert any("sfumato.worker: ready: model tiny-sd" in line for line in ready["lines"])
    assert "Sfumato listening on " + launch["url"] in ready["log"]  # the log lines shown
    loading = [seen for seen in launch["seen"] if seen[0].startswith("Local server: loading ")]
    assert loading and all(visible for _, _, visible, _ in loading), launch["seen"]
    for run in (1, 2):  # the bar only moves forward within one start (the second starts at 0)
        percents = [p for _, p, _, seen_in in loading if seen_in == run]
        assert percents == sorted(percents), launch["seen"]
    assert any(seen_in == 1 for *_, seen_in in loading), launch["seen"]
    assert launch["job"]["state"] == "done" and len(launch["job"]["layers"]) == 1, launch["job"]
    stopped = launch["stopped"]
    assert stopped["state"] == "stopped" and stopped["gone"], stopped
    assert stopped["title"] == "Local server: stopped" and not stopped["retry"], stopped


def test_a_server_the_docker_started_goes_with_krita(launch: dict[str, Any]) -> None:
    again = launch["again"]
    assert again["pid"] and again["pid"] != launch["ready"]["pid"], again
    assert gone(again["pid"]), f"server {again['pid']} outlived Krita"
