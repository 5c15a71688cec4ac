"""Regions (``inputs.regions``): each region's prompt conditions only the pixels of its mask.

Method — cross-attention masking (docs/architecture.md, "Regions"). The shared prompt and
each region's prompt are encoded separately by the pipeline's own ``encode_prompt`` (77
tokens each) and joined along the token axis; the pipeline gets these ``prompt_embeds``
instead of the prompt (SDXL: the shared prompt's pooled embedding). Every cross-attention
layer of the UNet (and of the job's ControlNets) gets a :class:`RegionAttention` processor,
which wraps the layer's own processor (plain, or an IP-Adapter's) and hands it an additive
attention mask: a latent position may attend to the shared tokens, and to a region's tokens
only where that region's mask, area-averaged to the layer's resolution, is at least 128/255.
The unconditional half does the same with the shared and region negatives.

Cost: the text keys grow from 77 to 77 × (regions + 1), so the cross-attention's score
matrix grows by that factor (self-attention, the larger part at high resolution, does not
change), plus one mask per resolution. The processors are removed when the job ends.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..protocol.direction import Region
from .loader import Pipeline

THRESHOLD = 128 / 255  # a region covers a position where its mask's area average is ≥ this


class RegionLayout:
    """The token layout (shared prompt first, then each region, ``tokens`` each) and the
    region masks, giving the attention mask for any latent resolution the UNet visits."""

    def __init__(self, masks: np.ndarray, latent: tuple[int, int], tokens: int) -> None:
        self.masks = torch.from_numpy(masks.astype(np.float32) / 255.0)  # (N, H, W)
        self.latent = latent  # (height, width) of the pipeline's latents
        self.tokens = tokens
        self._allowed: dict[int, torch.Tensor] = {}

    def grid(self, positions: int) -> tuple[int, int]:
        """(h, w) of a layer with ``positions`` latent positions: the UNet halves its sides
        (rounding up) at each level, so the level is the one whose area matches."""
        h, w = self.latent
        for level in range(8):
            gh, gw = math.ceil(h / 2**level), math.ceil(w / 2**level)
            if gh * gw == positions:
                return gh, gw
        raise ValueError(f"no UNet level of a {w}×{h} latent has {positions} positions")

    def allowed(self, positions: int) -> torch.Tensor:
        """Bool (positions, tokens × (N + 1)): which text tokens each position may see."""
        if positions not in self._allowed:
            gh, gw = self.grid(positions)
            pooled = F.adaptive_avg_pool2d(self.masks[None], (gh, gw))[0]  # (N, gh, gw)
            inside = (pooled >= THRESHOLD - 1e-6).reshape(len(self.masks), positions).T
            shared = torch.ones(positions, 1, dtype=torch.bool)
            per_segment = torch.cat([shared, inside], dim=1)  # (positions, N + 1)
            self._allowed[positions] = per_segment.repeat_interleave(self.tokens, dim=1)
        return self._allowed[positions]

    def bias(self, batch: int, positions: int, dtype: torch.dtype, device: Any) -> torch.Tensor:
        allowed = self.allowed(positions).to(device)
        bias = torch.zeros(allowed.shape, dtype=dtype, device=device)
        bias.masked_fill_(~allowed, torch.finfo(dtype).min)
        return bias[None].expand(batch, -1, -1)


class RegionAttention:
    """Wraps one cross-attention processor; self-attention layers are never given one."""

    def __init__(self, inner: Any, layout: RegionLayout) -> None:
        self.inner = inner
        self.layout = layout

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Any = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        batch, positions = hidden_states.shape[0], hidden_states.shape[1]
        mask = self.layout.bias(batch, positions, hidden_states.dtype, hidden_states.device)
        return self.inner(attn, hidden_states, encoder_hidden_states, mask, temb, **kwargs)  # type: ignore[no-any-return]


def _models(pipe: Pipeline) -> list[Any]:
    """The UNet and the job's ControlNets (one, or a MultiControlNet's nets)."""
    out = [pipe.unet]
    controlnet = getattr(pipe, "controlnet", None)
    if controlnet is not None:
        out += list(getattr(controlnet, "nets", [controlnet]))
    return out


@contextlib.contextmanager
def applied(
    pipe: Pipeline,
    regions: tuple[Region, ...],
    prompt: str,
    negative: str,
    work: tuple[int, int],
    guidance: float,
) -> Iterator[dict[str, Any]]:
    """Install region attention for one job; yields the pipeline's prompt keywords (which
    replace ``prompt`` and ``negative_prompt``); the processors go on exit."""
    cfg = guidance > 1.0
    embeds = _encode(pipe, [(prompt, negative), *((r.prompt, r.negative) for r in regions)], cfg)
    tokens = int(embeds["prompt_embeds"].shape[1]) // (len(regions) + 1)
    masks = np.stack([r.mask.to_numpy()[:, :, 0] for r in regions])
    layout = RegionLayout(masks, (work[1] // 8, work[0] // 8), tokens)
    saved = [(model, dict(model.attn_processors)) for model in _models(pipe)]
    try:
        for model, processors in saved:
            model.set_attn_processor(
                {
                    name: RegionAttention(p, layout) if name.endswith("attn2.processor") else p
                    for name, p in processors.items()
                }
            )
        yield embeds
    finally:
        for model, processors in saved:
            model.set_attn_processor(processors)


@torch.no_grad()
def _encode(pipe: Pipeline, prompts: list[tuple[str, str]], cfg: bool) -> dict[str, Any]:
    """Each (prompt, negative) encoded by the pipeline itself, joined along the tokens."""
    sdxl = hasattr(pipe, "text_encoder_2")
    parts: list[tuple[Any, ...]] = []
    for text, negative in prompts:
        out = pipe.encode_prompt(
            prompt=text, device=pipe.unet.device, num_images_per_prompt=1,
            do_classifier_free_guidance=cfg, negative_prompt=negative or None,
        )  # fmt: skip
        parts.append(tuple(out))
    embeds: dict[str, Any] = {"prompt_embeds": torch.cat([p[0] for p in parts], dim=1)}
    if cfg:
        embeds["negative_prompt_embeds"] = torch.cat([p[1] for p in parts], dim=1)
    if sdxl:  # the shared prompt's pooled embedding drives SDXL's text-time conditioning
        embeds["pooled_prompt_embeds"] = parts[0][2]
        if cfg:
            embeds["negative_pooled_prompt_embeds"] = parts[0][3]
    return embeds
