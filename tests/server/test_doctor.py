"""``sfumato doctor`` as a user runs it: a subprocess, its lines, its JSON and its exit status.

Odd states are made real, not described: a torch that does not import (a package named
``torch`` first on the path that raises, as a broken install does), a config file with a bad
setting, a port a plain socket holds, a port a Sfumato server holds, a registry whose default
model's folder is missing. Only one run imports the real torch (it costs seconds)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfumato import __version__

BROKEN_TORCH = (
    'raise ImportError("libtorch_cpu.so: cannot open shared object file", name="torch")\n'
)


def doctor(
    *args: str, broken_torch: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    environ = {**os.environ, **(env or {})}
    if broken_torch is not None:
        (broken_torch / "torch").mkdir(exist_ok=True)
        (broken_torch / "torch" / "__init__.py").write_text(BROKEN_TORCH)
        environ["PYTHONPATH"] = os.pathsep.join(
            [str(broken_torch), *filter(None, [environ.get("PYTHONPATH")])]
        )
    run = subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "doctor", "--json", *args],
        capture_output=True, text=True, timeout=120, env=environ,
    )  # fmt: skip
    assert "Traceback" not in run.stderr, run.stderr
    return run.returncode, json.loads(run.stdout), run.stderr


def found(report: dict[str, Any], area: str, level: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["area"] == area and f["level"] == level]


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_torch_that_does_not_import_blocks_and_names_the_fix(
    tmp_path: Path, free_port: int
) -> None:
    rc, report, _ = doctor("--port", str(free_port), broken_torch=tmp_path)
    assert rc == 1 and report["blocking"] is True and report["torch"] is None
    (torch,) = found(report, "torch", "fail")
    assert "torch does not import" in torch["text"] and "libtorch_cpu.so" in torch["text"]
    assert "pip install 'sfumato[server]'" in torch["fix"]
    assert found(report, "port", "ok")  # the other checks still ran
    assert found(report, "config", "ok")


def test_a_bad_config_setting_is_named_and_the_other_checks_still_run(
    tmp_path: Path, free_port: int
) -> None:
    config = tmp_path / "sfumato.toml"
    config.write_text(f"[server]\nport = {free_port}\npng_compression = 12\n")
    rc, report, _ = doctor("--config", str(config), broken_torch=tmp_path)
    assert rc == 1
    (problem,) = found(report, "config", "fail")
    assert "png_compression" in problem["text"] and "0 to 9" in problem["text"]
    assert str(config) in problem["text"] and problem["fix"]
    assert found(report, "disk", "ok") or found(report, "disk", "warn")


def test_a_running_sfumato_server_is_recognised(server: Any, tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    _, report, _ = doctor("--port", port, broken_torch=tmp_path)
    (note,) = found(report, "port", "note")
    assert f"a Sfumato server (sfumato {__version__}) already serves there" in note["text"]
    assert not found(report, "port", "fail")


def test_a_missing_default_model_blocks_with_the_fix(tmp_path: Path, free_port: int) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(
        'default = "house"\n[models.house]\nkind = "base"\nfamily = "sd15"\n'
        'source = "dir:weights/house"\n'
        '[models.shared]\nkind = "base"\nfamily = "sdxl"\nsource = "hub:someone/some-model"\n'
    )
    rc, report, _ = doctor(
        "--registry", str(registry), "--port", str(free_port), broken_torch=tmp_path,
        env={"HF_HUB_CACHE": str(tmp_path / "hub")},
    )  # fmt: skip
    assert rc == 1
    (default,) = found(report, "models", "fail")
    assert default["text"] == "house (base, sd15), the default: weights missing"
    assert f"{tmp_path / 'weights' / 'house'}" in default["fix"]
    (other,) = found(report, "models", "warn")
    assert other["text"].startswith("shared (base, sdxl)")
    assert "sfumato models pull shared" in other["fix"]
    # the same weights put in place: present, nothing about models blocks any more
    (tmp_path / "weights" / "house").mkdir(parents=True)
    (tmp_path / "weights" / "house" / "model_index.json").write_text("{}")
    _, report, _ = doctor(
        "--registry", str(registry), "--port", str(free_port), broken_torch=tmp_path,
        env={"HF_HUB_CACHE": str(tmp_path / "hub")},
    )  # fmt: skip
    assert not found(report, "models", "fail")
    assert any(f["text"].startswith("house (base, sd15), the default: present")
               for f in found(report, "models", "ok"))  # fmt: skip


@pytest.mark.slow
def test_the_real_torch_on_this_machine_and_nothing_blocks(free_port: int) -> None:
    """The one run that imports torch: its facts are this machine's, and with the tiny default
    model and a free port nothing blocks (exit 0), whatever the device."""
    rc, report, _ = doctor("--port", str(free_port))
    torch = report["torch"]
    assert rc == 0 and report["blocking"] is False, report["findings"]
    assert torch["build"] in ("cuda", "rocm", "cpu") and torch["torch"]
    assert torch["device"] in ("cpu", "mps") or torch["device"].startswith("cuda")
    assert any(f["text"].startswith("the ML engine imports: diffusers ")
               for f in found(report, "torch", "ok"))  # fmt: skip
    device_lines = [f["text"] for f in report["findings"] if f["area"] == "device"]
    if torch["device"] == "cpu":
        assert "jobs will run on the CPU: minutes per real image" in device_lines
    else:
        assert any(t.startswith("jobs will run on ") for t in device_lines)
    assert len([g for g in torch["gpus"] if g["total"] > 0]) == len(torch["gpus"])


def test_a_port_another_program_holds_blocks_in_the_text_output(
    tmp_path: Path, taken_port: int
) -> None:
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(BROKEN_TORCH)
    run = subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "doctor", "--port", str(taken_port)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stderr
    assert lines[0].startswith(f"sfumato {__version__} on Python ")
    assert any(line.startswith("FAIL port ") for line in lines)
    assert any(line.startswith("FAIL torch ") for line in lines)
    assert f"FAIL port    127.0.0.1:{taken_port} is taken by another program" in run.stdout
    assert "fix: stop that program, or set server.port / --port" in run.stdout
    assert lines[-1] == "2 problem(s) block serving; fix the FAIL lines and run doctor again"


def test_an_exposed_address_needs_a_token_as_serve_says(tmp_path: Path) -> None:
    env = {"SFUMATO_TOKEN": ""}
    rc, report, _ = doctor("--host", "0.0.0.0", "--port", "0", broken_torch=tmp_path, env=env)
    (problem,) = found(report, "config", "fail")
    assert rc == 1 and "without a token" in problem["text"] and "--token" in problem["text"]
    _, report, _ = doctor("--host", "0.0.0.0", "--port", "0", "--token", "t", broken_torch=tmp_path)
    assert not found(report, "config", "fail")
    assert any("other machines can reach" in f["text"] for f in found(report, "port", "note"))
