"""The sd21 family in the engine: SD 2.x runs on diffusers' StableDiffusion* classes, decodes
previews as SD 1.x latents, upscales in 512 tiles, and a missing source or config is a clear
ModelUnavailable, never a hub error (issue 12.2). No sd21 weights exist offline: nothing loads."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
from diffusers import (
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)

from sfumato.engine import Engine, ModelUnavailable
from sfumato.engine.engine import UPSCALE_TILE
from sfumato.engine.loader import CONTROL_PIPELINES, PIPELINES
from sfumato.engine.previews import _LATENT_RGB, SHARED_PREVIEW
from sfumato.protocol import Task
from sfumato.registry import Registry


def test_sd21_uses_the_stable_diffusion_classes() -> None:
    assert PIPELINES["sd21"] == {
        Task.GENERATE: StableDiffusionPipeline,
        Task.REFINE: StableDiffusionImg2ImgPipeline,
        Task.INPAINT: StableDiffusionInpaintPipeline,
    }
    assert CONTROL_PIPELINES["sd21"][Task.GENERATE] is StableDiffusionControlNetPipeline
    assert UPSCALE_TILE["sd21"] == 512  # SD-Turbo's 512²
    # TAESD (the sd15 preview entry) and the sd15 RGB fit decode SD 2.x latents too
    assert SHARED_PREVIEW["sd21"] == "sd15" and _LATENT_RGB["sd21"] == _LATENT_RGB["sd15"]
    assert Registry.load(None).preview(SHARED_PREVIEW["sd21"]) is not None


def test_sd_turbo_missing_offline_says_how_to_get_it(tiny_cache: Path) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE=1 must be set in tests"
    engine = Engine(Registry.load(None), cache_dir=tiny_cache, device="cpu")
    with pytest.raises(ModelUnavailable) as caught:
        engine.load("sd-turbo")
    assert caught.value.model == "sd-turbo"
    assert "stabilityai/sd-turbo" in str(caught.value) and "download" in str(caught.value)


def test_an_sd21_checkpoint_without_config_names_the_config_field(
    tmp_path: Path, tiny_cache: Path
) -> None:
    (tmp_path / "turbo.safetensors").write_bytes(b"not read: the config is checked first")
    path = tmp_path / "models.toml"
    path.write_text(
        'default = "m"\n[models.m]\nkind = "base"\nfamily = "sd21"\n'
        'source = "file:turbo.safetensors"\n'
    )
    engine = Engine(Registry.load(path), cache_dir=tiny_cache, device="cpu")
    with pytest.raises(
        ModelUnavailable, match=r'no single-file configuration for the sd21 family; set config = "'
    ):
        engine.load("m")
