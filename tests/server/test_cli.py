"""The CLI through a real server: files written, ids printed, clear failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def sfumato(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sfumato.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_generate_writes_variants_and_prints_paths(server, tmp_path: Path) -> None:
    out = tmp_path / "cube.png"
    proc = sfumato("generate", "--url", server.url, "--prompt", "a cube", "--width", "64", "--height", "64",
                   "--steps", "2", "--seed", "4", "--variants", "2", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("job ")
    for n, seed in ((0, 4), (1, 5)):
        path = tmp_path / f"cube-{n}.png"
        assert f"{path}  seed {seed}" in lines
        assert Image.open(path).size == (64, 64)


def test_inpaint_from_files(server, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    proc = sfumato("generate", "--url", server.url, "--prompt", "x", "--image", str(tmp_path / "in.png"),
                   "--mask", str(tmp_path / "mask.png"), "--steps", "3", "--strength", "1", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = np.asarray(Image.open(out))
    assert np.array_equal(result[:, :32], image[:, :32])


def test_unreachable_server_fails_with_one_line(tmp_path: Path) -> None:
    proc = sfumato(
        "generate",
        "--url",
        "ws://127.0.0.1:9",
        "--prompt",
        "x",
        "--out",
        str(tmp_path / "x.png"),
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sfumato serve" in lines[0]


def test_failed_job_exits_non_zero_with_the_reason(server, tmp_path: Path) -> None:
    proc = sfumato(
        "generate",
        "--url",
        server.url,
        "--prompt",
        "x",
        "--model",
        "nope",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert proc.returncode == 1
    assert "unknown_model" in proc.stderr and "nope" in proc.stderr


def test_models_prints_the_registry(server) -> None:
    proc = sfumato("models", "--url", server.url)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert listing["default"] == "tiny-sd"
    assert any(m["name"] == "sd15" and m["license"] for m in listing["models"])
