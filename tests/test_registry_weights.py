"""ModelInfo.available (issue 18 item 6): the server tells clients which entries have their
weights on its disk, from file checks alone; the flag crosses the wire only when false."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import ModelInfo, Models, decode_server_message, encode_bytes
from sfumato.registry.rules import ModelEntry
from sfumato.registry.weights import present


def entry(source: str, kind: str = "base") -> ModelEntry:
    return ModelEntry(name="m", kind=kind, family="sd15", source=source)


def test_each_source_is_present_only_when_its_weights_are_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert present(entry("tiny:sd15"))  # built on first use
    folder = tmp_path / "model"
    assert not present(entry(f"dir:{folder}"))
    folder.mkdir()
    assert not present(entry(f"dir:{folder}")), "a base folder needs its model_index.json"
    assert present(entry(f"dir:{folder}", kind="lora"))
    (folder / "model_index.json").write_text("{}")
    assert present(entry(f"dir:{folder}"))
    ckpt = tmp_path / "x.safetensors"
    assert not present(entry(f"file:{ckpt}"))
    ckpt.write_bytes(b"0")
    assert present(entry(f"file:{ckpt}"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert not present(entry("hub:org/model"))
    snapshot = tmp_path / "hub" / "models--org--model" / "snapshots"
    snapshot.mkdir(parents=True)
    assert not present(entry("hub:org/model")), "an empty snapshots folder holds nothing"
    (snapshot / "abc123").mkdir()
    assert present(entry("hub:org/model"))


@given(available=st.booleans(), name=st.text(min_size=1, max_size=12))
def test_available_round_trips_and_is_sent_only_when_false(available: bool, name: str) -> None:
    info = ModelInfo(name, "sd15", "base", available=available)
    assert ("available" in info.to_wire()) is (not available)
    models = Models((info,), name)
    again = decode_server_message(encode_bytes(models))
    assert isinstance(again, Models) and again.models[0].available is available


def test_the_registrys_model_list_marks_missing_weights(tmp_path: Path) -> None:
    from sfumato.registry.rules import Registry

    entries = {"tiny": entry("tiny:sd15"), "gone": entry(f"dir:{tmp_path / 'absent'}")}
    entries = {n: ModelEntry(n, e.kind, e.family, e.source) for n, e in entries.items()}
    infos = {i.name: i.available for i in Registry(entries, "tiny").infos()}
    assert infos == {"tiny": True, "gone": False}
