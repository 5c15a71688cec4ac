"""The full Krita GUI under Xvfb: the plugin's factory makes the docker, which connects to
``$SFUMATO_URL`` by itself; a helper plugin (smoke_plugin/) types a prompt, presses Generate
and screenshots the window. Judged by the file the helper writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..conftest import RunningServer
from .conftest import HERE, KritaEnv


def test_docker_generates_in_the_gui(
    krita_env: KritaEnv, krita_server: RunningServer, tmp_path: Path
) -> None:
    env = dict(krita_env.env)
    for name in ("config", "data", "cache", "runtime"):
        (tmp_path / name).mkdir(mode=0o700)
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_RUNTIME_DIR=str(tmp_path / "runtime"),
        SFUMATO_URL=krita_server.url, SFUMATO_SMOKE_OUT=str(tmp_path / "smoke.json"),
        SFUMATO_SMOKE_SHOT=os.environ.get("SFUMATO_KRITA_SCREENSHOT", str(tmp_path / "shot.png")),
        SFUMATO_SMOKE_DOCKER_SHOT=str(tmp_path / "docker.png"),
    )  # fmt: skip
    pykrita = tmp_path / "data" / "krita" / "pykrita"
    shutil.copytree(krita_env.pykrita, pykrita)
    shutil.copytree(HERE / "smoke_plugin", pykrita, dirs_exist_ok=True)
    (tmp_path / "config" / "kritarc").write_text(
        "[python]\nenable_sfumato_krita=true\nenable_sfumato_smoke=true\n"
        "[General]\nshowsplash=false\n",
        "utf-8",
    )
    cmd = ["krita", "--nosplash"]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
        log = proc.stdout[-2000:] + proc.stderr[-3000:]
    except subprocess.TimeoutExpired as exc:
        log = f"Krita did not quit within {exc.timeout} s"
    out = tmp_path / "smoke.json"
    assert out.is_file(), f"the smoke helper wrote nothing:\n{log}"
    report = json.loads(out.read_text("utf-8"))
    assert report["ok"], report.get("error", report)
    assert report["dockers"], "the plugin's factory made no docker"
    assert report["job"]["state"] == "done", report["job"]
    # only the LoRAs of the default model's family (tiny-sd is sd15): not tiny-sdxl-style
    assert report["loras"] == [["tiny-sd-style", True]]
    assert report["loras_used"] == {"tiny-sd-style": 1.0}
    assert report["job"]["layers"] == [
        "a lighthouse at dusk, oil painting · seed 7",
        "a lighthouse at dusk, oil painting · seed 8",
    ]
    groups = {name: children for name, kind, children in report["tree"] if kind == "grouplayer"}
    assert groups["Sfumato"] == report["job"]["layers"][::-1]  # Krita lists bottom first
    assert report["progress"] == 100 and report["has_preview"]
    assert report["screenshot"] and report["docker_shot"]
