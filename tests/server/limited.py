"""Real ``sfumato serve`` processes with small limits, for the resource-limit tests.

Each server gets its own config file (``[limits]`` / ``[resources]``), results folder and log
file (stderr), so a test can read what the server logged and how many descriptors and how
much memory it holds (``/proc``). ``--no-preload``: these servers never import torch unless a
test runs a job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sfumato.protocol import Array, JobParams, Result, Task
from sfumato.service.store import ResultStore, owner_key


@dataclass
class Limited:
    url: str
    proc: subprocess.Popen[str]
    results: Path
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None


def toml(tables: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in tables.items():
        out.append(f"[{name}]")
        out.extend(f"{k} = {v!r}".replace("'", '"') for k, v in values.items())
    return "\n".join(out) + "\n"


@contextmanager
def limited_server(
    tmp: Path,
    cache: Path,
    resources: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    *,
    preexec: Any = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Limited]:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "sfumato.toml"
    config.write_text(toml({"limits": limits or {}, "resources": resources or {}}))
    results, log = tmp / "results", tmp / "server.log"
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "sfumato.cli", "serve", "--port", "0", "--config",
                str(config), "--results", str(results), "--cache", str(cache), "--no-preload",
                *extra,
            ],
            stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=preexec,
        )  # fmt: skip
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if line.startswith("Sfumato listening on "):
            url = line.split()[-1]
            break
        if time.monotonic() > deadline:
            break
    if not url:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the server did not start:\n{log.read_text()}")
    try:
        yield Limited(url, proc, results, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plant(results: Path, client_id: str, job_id: str, side: int = 64) -> Result:
    """A finished result written by the real store, as if a job had run (no torch needed)."""
    image = np.random.default_rng(len(job_id)).integers(0, 256, (side, side, 3), dtype=np.uint8)
    result = Result(job_id, Task.GENERATE, (Array.from_numpy(image),), (1,), "tiny-sd", True)
    ResultStore(results).write(owner_key(None, client_id), result, JobParams())
    return result
