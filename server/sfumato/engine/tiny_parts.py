"""Tiny ControlNets, LoRAs and preview decoders for the tiny families, built offline.

They let every conditioning path (ControlNet, MultiControlNet, LoRA switching, previews) run
with no network, exactly as real parts do: each is written with ``save_pretrained`` (or
``save_lora_weights``) into ``<cache_dir>/tiny/<part>/`` and loaded back through the normal
``from_pretrained`` / ``load_lora_weights`` path.

Two details make them useful in tests rather than inert:

- ``ControlNetModel.from_unet`` zero-initialises the output convolutions (the "zero convs")
  and the last conv of the map's embedding, so a fresh ControlNet adds exactly nothing and
  ignores its map. They are randomised, deterministically per control kind, so that each
  kind visibly changes the image, two kinds differ, and two maps differ.
- peft's ``add_adapter`` starts ``lora_B`` at zero for the same reason; it is randomised too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderTiny,
    ControlNetModel,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from ..registry import TINY_SOURCES
from . import tiny_adapter
from .tiny import MARKER, SEED, VERSION, ensure_built, ensure_tiny, tiny_dir

# The conditioning embedding must downsample 8× (three stride-2 convs) to meet SD's latents;
# four small stages keep the tiny ControlNet a few hundred kB.
_CONDITIONING_CHANNELS = (8, 8, 16, 16)
_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
_OUTPUT_STD = 0.3  # zero convs → N(0, 0.3): control changes a 64² image by tens of levels


def ensure_part(cache_dir: Path, source: str) -> Path:
    """The folder of the tiny part ``source`` (``tiny:sd15-controlnet-depth`` …), built on
    first use. Raises ValueError for a source that names no tiny part."""
    if source not in TINY_SOURCES or TINY_SOURCES[source][0] == "base":
        parts = ", ".join(s for s, (kind, _f) in TINY_SOURCES.items() if kind != "base")
        raise ValueError(f"{source!r} is not a tiny part; the tiny parts are {parts}")
    kind, family = TINY_SOURCES[source]
    location = source.removeprefix("tiny:")
    return ensure_built(
        tiny_dir(cache_dir, location),
        lambda folder: _build(kind, family, location, cache_dir, folder),
    )


def _build(kind: str, family: str, location: str, cache_dir: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    base = ensure_tiny(cache_dir, family)
    offset = 1 + sorted(TINY_SOURCES).index(f"tiny:{location}")  # a seed per part
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + offset)
        if kind == "controlnet":
            _controlnet(base).save_pretrained(folder)
        elif kind == "lora":
            _save_lora(base, family, folder)
        elif kind == "ip_adapter":
            tiny_adapter.build_adapter(base, folder)
        elif kind == "image_encoder":
            tiny_adapter.build_encoder(folder)
        else:
            _preview().save_pretrained(folder)
    (folder / MARKER).write_text(json.dumps({"version": VERSION, "part": location}))


def _controlnet(base: Path) -> Any:  # diffusers' mixins are opaque to mypy
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=_CONDITIONING_CHANNELS
    )
    with torch.no_grad():
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            torch.nn.init.normal_(conv.weight, std=_OUTPUT_STD)
            torch.nn.init.normal_(conv.bias, std=_OUTPUT_STD / 3)
        # The map's embedding: its last conv is zeroed, and with default init and biases the
        # map's signal fades within its seven convs; He init × 2 without biases carries it.
        for conv in controlnet.controlnet_cond_embedding.modules():
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                conv.weight.mul_(2.0)
                if conv.bias is not None:
                    torch.nn.init.zeros_(conv.bias)
    return controlnet


def _save_lora(base: Path, family: str, folder: Path) -> None:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=_LORA_TARGETS))
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.5)
    layers = get_peft_model_state_dict(unet)
    cls: Any = StableDiffusionPipeline if family == "sd15" else StableDiffusionXLPipeline
    cls.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)


def _preview() -> Any:
    """TAESD's shape (4 latent channels, three 2× upsamplings) at a fraction of its width."""
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    )
