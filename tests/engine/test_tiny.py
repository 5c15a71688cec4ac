"""The tiny families: built offline, deterministic, idempotent, loaded like downloaded models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import load_file

from sfumato.engine import ensure_tiny
from sfumato.engine.tiny import MARKER, build


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(folder.rglob("*.safetensors")):
        for key, value in load_file(path).items():
            tensors[f"{path.relative_to(folder)}:{key}"] = value
    return tensors


def test_ensure_tiny_is_idempotent(tiny_cache: Path) -> None:
    folder = ensure_tiny(tiny_cache, "sd15")
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert ensure_tiny(tiny_cache, "sd15") == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == stamps
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch left


def test_builds_are_deterministic(tmp_path: Path) -> None:
    build("sd15", tmp_path / "a")
    build("sd15", tmp_path / "b")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_incomplete_folder_is_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / "tiny" / "sd15"
    target.mkdir(parents=True)
    (target / "model_index.json").write_text("{ half written")
    folder = ensure_tiny(tmp_path, "sd15")
    assert (folder / MARKER).is_file()
    StableDiffusionPipeline.from_pretrained(folder)  # a complete model again


@pytest.mark.parametrize(
    ("family", "cls"), [("sd15", StableDiffusionPipeline), ("sdxl", StableDiffusionXLPipeline)]
)
def test_tiny_loads_through_from_pretrained(tiny_cache: Path, family: str, cls: type) -> None:
    pipe = cls.from_pretrained(ensure_tiny(tiny_cache, family))
    assert pipe.vae_scale_factor == 8  # SD's latent scale, so sizes behave like the real model
    assert len(pipe.tokenizer) == 514
    ids = pipe.tokenizer("a cat", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == 512  # start token, then bytes, padded with end tokens
    if family == "sdxl":
        assert pipe.unet.config.addition_embed_type == "text_time"


def test_unknown_tiny_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sd15"):
        ensure_tiny(tmp_path, "sd3")
