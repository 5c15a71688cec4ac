"""Batch runs that resume after a kill, contact sheets, and reproduce from credentials."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

PLAN = """
name = "test plan"
steps = 2
seeds = [1, 2, 3]
sizes = [[64, 64]]
prompts = ["a red shoe", "a blue bag"]
[segments]
a = "bright"
b = "dark"
"""


def sfumato(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sfumato.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_batch_killed_midway_resumes_without_redoing_finished_items(server, tmp_path: Path) -> None:
    plan, out = tmp_path / "plan.toml", tmp_path / "out"
    plan.write_text(PLAN)
    cmd = [sys.executable, "-m", "sfumato.cli", "batch", str(plan), "--out", str(out), "--url", server.url,
           "--in-flight", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(list(out.glob("*.png"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert 3 <= len(first) < 12, "the kill should land midway through the 12 items"

    rerun = sfumato("batch", str(plan), "--out", str(out), "--url", server.url)
    assert rerun.returncode == 0, rerun.stderr
    finished = len(json.loads((out / "manifest.json").read_text())["items"])
    assert finished == 12
    assert f"{12 - len(first)} generated, {len(first)} already finished" in rerun.stdout
    for name, mtime in first.items():  # finished outputs were not redone
        assert (out / name).stat().st_mtime_ns == mtime

    manifest = json.loads((out / "manifest.json").read_text())
    html = (out / "contact.html").read_text()
    for entry in manifest["items"]:
        assert f'src="{entry["file"]}"' in html
        assert entry["segment"] in ("a", "b") and entry["seed"] in (1, 2, 3)
    assert html.count("<img") == 12
    with Image.open(out / "contact.png") as sheet:
        assert (
            sheet.width > 3 * 64 and sheet.height > 4 * 64
        )  # 4 rows (prompt × segment), 3 columns

    verify = sfumato(
        "verify", *(str(p) for p in sorted(out.glob("*.png")) if p.name != "contact.png")
    )
    assert verify.returncode == 0, verify.stdout


def test_reproduce_regenerates_the_same_pixels(server, tmp_path: Path) -> None:
    out = tmp_path / "made.png"
    made = sfumato("generate", "--url", server.url, "--prompt", "reproducible", "--seed", "77",
                   "--width", "64", "--height", "64", "--steps", "3", "--out", str(out))  # fmt: skip
    assert made.returncode == 0, made.stderr
    again = sfumato("reproduce", str(out), "--url", server.url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "MATCH" in again.stdout and "seed 77" in again.stdout

    plain = tmp_path / "plain.png"
    Image.open(out).save(plain)  # same pixels, credentials stripped
    refused = sfumato("reproduce", str(plain), "--url", server.url)
    assert refused.returncode == 1 and "no valid Sfumato content credentials" in refused.stderr
