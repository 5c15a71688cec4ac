"""Review tests share one real batch (tiny model, the session's server) and start real
``sfumato review`` processes on copies of it, so each test's decisions are its own."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

PLAN = """
name = "review test"
steps = 2
seeds = [5, 6]
sizes = [[64, 64]]
prompts = ["a red shoe", "a blue bag"]
[segments]
bright = "bright light"
dark = "at night"
"""
TOKEN = "rev iew#&=+%token"  # URL-special characters: the printed URL must encode them


def call(base: str, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    """One request with exactly the headers given (and Host, which HTTP/1.1 requires)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    send = {"Host": parts.netloc, **headers}
    if data is not None:
        send.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=send)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(raw) if kind == "application/json" else raw


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sfumato(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sfumato.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("review-plan") / "plan.toml"
    path.write_text(PLAN)
    return path


@pytest.fixture(scope="session")
def made_batch(server, plan_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``sfumato batch`` run: 2 prompts × 2 segments × 2 seeds on the tiny model."""
    out = tmp_path_factory.mktemp("review-batch") / "out"
    run = sfumato("batch", str(plan_file), "--out", str(out), "--url", server.url)
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture
def batch(made_batch: Path, tmp_path: Path) -> Path:
    """This test's own copy of the batch (its review.sqlite starts empty)."""
    return Path(shutil.copytree(made_batch, tmp_path / "batch"))


class Review:
    """A running ``sfumato review`` process."""

    def __init__(self, folder: Path, *extra: str) -> None:
        cmd = [sys.executable, "-m", "sfumato.cli", "review", str(folder), "--port", "0",
               "--token", TOKEN, "--reviewer", "cd", *extra]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            if line.startswith("open "):
                self.url = line.split()[1]  # http://127.0.0.1:PORT/#token=…
                self.base = self.url.split("#")[0].rstrip("/")
                return
            if time.monotonic() > deadline:
                break
        self.proc.kill()
        raise RuntimeError(f"sfumato review did not start: {self.proc.communicate()[1]}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def review() -> Iterator[Callable[..., Review]]:
    started: list[Review] = []

    def start(folder: Path, *extra: str) -> Review:
        started.append(Review(folder, *extra))
        return started[-1]

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.kill()
