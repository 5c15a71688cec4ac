"""``welcome.system`` from a real server, and the short form built from a registry (pure)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import SystemInfo
from sfumato.registry import Registry
from sfumato.service.config import ServerConfig
from sfumato.service.health import _short, system_info

from ..protocol.strategies import FAST
from .conftest import Peer


def test_the_welcome_says_the_models_and_once_loaded_the_device(server: Any) -> None:
    """The session server preloads the tiny model; until that has loaded the device is not
    known, after it the welcome names it (this machine's: the CPU, or a GPU where there is one)."""
    registry = Registry.load(None)
    deadline = time.monotonic() + 120
    while True:
        peer = Peer(server.url)
        try:
            system = peer.hello().system
        finally:
            peer.close()
        assert isinstance(system, SystemInfo)
        assert system.models_present + system.models_missing == len(registry.entries)
        assert system.models_present >= sum(e.tiny for e in registry.entries.values())
        if system.device or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert system.device == "cpu" or system.device.startswith(("cuda:", "mps"))
    assert system.torch
    if system.device == "cpu":  # a real user there hears it, with the fix
        assert any(w.startswith("jobs will run on the CPU") for w in system.warnings)


def test_a_missing_default_model_is_a_warning_and_counted(tmp_path: Path) -> None:
    registry = Registry.parse(
        'default = "house"\n[models.house]\nkind = "base"\nfamily = "sd15"\n'
        'source = "dir:weights/house"\n[models.ready]\nkind = "base"\nfamily = "sd15"\n'
        'source = "dir:weights/ready"\n[models.other]\nkind = "base"\nfamily = "sd15"\n'
        'source = "dir:weights/other"\n',
        origin="test",
        base_dir=tmp_path,
    )
    (tmp_path / "weights" / "ready").mkdir(parents=True)
    (tmp_path / "weights" / "ready" / "model_index.json").write_text("{}")
    config = ServerConfig(cache=tmp_path / "cache", results=tmp_path / "results")
    system = system_info(registry, "house", config, None)
    assert (system.models_present, system.models_missing) == (1, 2)
    assert system.device == "" and system.torch == "" and system.vram == 0
    (warning,) = [w for w in system.warnings if "house" in w]
    assert "the default model house: weights missing" in warning
    assert str(tmp_path / "weights" / "house") in warning
    assert not any("other" in w for w in system.warnings)  # counted, not repeated


@FAST
@given(st.integers(0, 40))
def test_a_welcome_keeps_a_few_warnings_and_counts_the_rest(count: int) -> None:
    warnings = tuple(f"w{n}" for n in range(count))
    kept = _short(warnings)
    assert len(kept) == min(count, 8)
    if count <= 8:
        assert kept == warnings
    else:
        assert kept[:7] == warnings[:7]
        assert kept[7] == f"{count - 7} more: run `sfumato doctor` on the server machine"
