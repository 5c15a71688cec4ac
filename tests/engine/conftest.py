"""Fixtures for the engine tests: real tiny pipelines, built once per session, run on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfumato.engine import Engine, ensure_tiny
from sfumato.registry import Registry


@pytest.fixture(scope="session")
def tiny_cache(model_cache: Path) -> Path:
    """The session's model cache with both tiny families built (the root conftest owns it)."""
    for family in ("sd15", "sdxl"):
        ensure_tiny(model_cache, family)
    return model_cache


@pytest.fixture(scope="session")
def engine(tiny_cache: Path) -> Engine:
    """One engine on tiny-sd for the task tests; tests that switch models make their own."""
    eng = Engine(Registry.load(None), cache_dir=tiny_cache, device="cpu")
    eng.load("tiny-sd")
    return eng
