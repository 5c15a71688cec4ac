"""Fixtures shared by every test tree: offline mode, one tiny-model cache per session, and
real ``sfumato serve`` subprocesses on loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may reach a model hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny models are built, once per test session."""
    return tmp_path_factory.mktemp("model-cache")


@dataclass
class RunningServer:
    url: str
    results: Path
    proc: subprocess.Popen[str]


@contextmanager
def running_server(results: Path, cache: Path, *extra: str) -> Iterator[RunningServer]:
    from sfumato.cli.demo import start_server

    proc, url = start_server(results, "--cache", str(cache), *extra)
    try:
        yield RunningServer(url, results, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[RunningServer]:
    """One server for the tests that do not need a special configuration."""
    with running_server(tmp_path_factory.mktemp("results"), model_cache) as s:
        yield s
