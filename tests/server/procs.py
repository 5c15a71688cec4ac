"""Real ``sfumato serve`` processes for the restart and failure tests: started on a results
folder, killed with SIGKILL or stopped with SIGTERM, started again on the same folder. Their
log goes to a file, and :meth:`ServerProcess.check_log` fails a test on any sign that a task
died unobserved."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# What asyncio writes when a task or callback died and nobody looked: never acceptable.
UNOBSERVED = (
    "Task exception was never retrieved",
    "Future exception was never retrieved",
    "Exception in callback",
    "Task was destroyed but it is pending",
)


class ServerProcess:
    def __init__(
        self,
        results: Path,
        cache: Path,
        log: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        preexec: Callable[[], Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.log_path = log
        self.results = results
        with open(log, "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sfumato.cli", "serve", "--port", "0",
                 "--results", str(results), "--cache", str(cache), *extra],
                stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, **(env or {})}, preexec_fn=preexec,
            )  # fmt: skip
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            if line.startswith("Sfumato listening on "):
                self.url = line.split()[-1]
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError(f"the server did not start ({self.proc.wait()}):\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: nothing runs after it, as with a crash or a power cut."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def term(self, timeout: float = 60) -> int:
        """SIGTERM, the graceful stop; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def check_log(self) -> None:
        text = self.log()
        for marker in UNOBSERVED:
            assert marker not in text, f"the server log shows {marker!r}:\n{text[-4000:]}"

    def started(self, job_id: str) -> int:
        """How many times this server began running ``job_id`` (its log says so each time)."""
        return len(re.findall(rf"job {re.escape(job_id)}: \w+ on ", self.log()))


@pytest.fixture
def serve(tmp_path: Path, model_cache: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers on one results folder (``tmp_path/results``); each one's log is checked
    for unobserved task deaths when the test ends, and every one is stopped."""
    started: list[ServerProcess] = []

    def start(*extra: str, results: Path | None = None, **kwargs: Any) -> ServerProcess:
        n = len(started)
        server = ServerProcess(
            results or tmp_path / "results", model_cache, tmp_path / f"server-{n}.log",
            *extra, **kwargs,
        )  # fmt: skip
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.check_log()
