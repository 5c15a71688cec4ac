"""A tiny IP-Adapter and its tiny CLIP image encoder, built offline for the tiny families.

They make the reference path (engine/references.py) run with no network exactly as real
parts do: the encoder is a ``CLIPVisionModelWithProjection`` written with ``save_pretrained``
(with its ``CLIPImageProcessor``) and the adapter a safetensors file in the layout
h94/IP-Adapter ships (``image_proj.*``: the image projection to 4 tokens; ``ip_adapter.<k>.
to_k_ip|to_v_ip``: one key/value pair per cross-attention layer, k = 1, 3, 5 … in the UNet's
processor order), which diffusers' ``load_ip_adapter`` reads. The adapter's shapes follow the
tiny UNet's config, so a change there is a change here.

Random weights at a scale that visibly moves a tiny image: at weight 1 a reference changes
a 64² output by tens of levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

ADAPTER_FILE = "ip-adapter.safetensors"
IMAGE_EMBED_DIM = 32  # the tiny encoder's projection: what the adapter's image_proj reads
IMAGE_SIDE = 32  # the tiny encoder's input (real ones: 224)
TOKENS = 4  # image tokens per reference, as the base IP-Adapter has
_STD = 0.5


def build_encoder(folder: Path) -> None:
    """The tiny encoder and its processor into ``folder`` (loaded back with from_pretrained)."""
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        image_size=IMAGE_SIDE, patch_size=8, projection_dim=IMAGE_EMBED_DIM,
    )  # fmt: skip
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIDE},
                       crop_size={"height": IMAGE_SIDE, "width": IMAGE_SIDE}).save_pretrained(folder)  # fmt: skip


def build_adapter(base: Path, folder: Path) -> None:
    """An adapter for the tiny UNet under ``base`` (a tiny pipeline folder) into ``folder``."""
    unet: Any = UNet2DConditionModel.from_pretrained(base / "unet")
    cross = int(unet.config.cross_attention_dim)
    tensors: dict[str, torch.Tensor] = {
        "image_proj.proj.weight": torch.randn(TOKENS * cross, IMAGE_EMBED_DIM) * _STD,
        "image_proj.proj.bias": torch.randn(TOKENS * cross) * _STD,
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name, hidden in _cross_attention_sizes(unet):
        del name
        for part in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key}.{part}.weight"] = torch.randn(hidden, cross) * _STD
        key += 2
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / ADAPTER_FILE))


def _cross_attention_sizes(unet: Any) -> list[tuple[str, int]]:
    """(processor name, hidden size) of each cross-attention layer, in diffusers' order."""
    channels = list(unet.config.block_out_channels)
    out = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        out.append((name, hidden))
    return out
