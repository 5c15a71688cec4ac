"""Step previews: the current latents as a small RGB image, every N steps.

A full VAE decode per step would double a job's time; TAESD (``AutoencoderTiny``) decodes the
same latents roughly five times faster and is the usual answer. The registry names the preview
decoder per family (``kind = "preview"``: a tiny random one for tiny models, madebyollin/taesd
and taesdxl for real ones). When none is registered or its weights are missing, the preview
falls back to a fixed linear map from the 4 latent channels to RGB — blurry, 1/8 scale, but
free — because a job must never fail for want of a preview.

Previews are at most :data:`MAX_SIDE` pixels on their long side (the protocol's "small"), never
larger than the output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..registry import Registry
from .errors import ModelUnavailable
from .loader import LoadedModel, load_part, quiet

log = logging.getLogger("sfumato.engine")
MAX_SIDE = 256
PreviewFn = Callable[[Any], np.ndarray]

# Least-squares fits of RGB on SD's latent channels, the approximation ComfyUI and A1111 use
# for their "latent preview" (rows: latent channels; columns: R, G, B), plus a per-colour bias.
_LATENT_RGB: dict[str, tuple[list[list[float]], list[float]]] = {
    "sd15": (
        [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
         [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
        [0.0, 0.0, 0.0],
    ),
    "sdxl": (
        [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
         [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
        [0.1084, -0.0175, -0.0011],
    ),
}  # fmt: skip
# SD 2.x uses SD 1.x's VAE (one latent space), so TAESD and the sd15 fit decode sd21 latents too.
_LATENT_RGB["sd21"] = _LATENT_RGB["sd15"]
SHARED_PREVIEW = {"sd21": "sd15"}


def preview_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the previews of an output this size: ≤ MAX_SIDE, aspect kept."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass
class Previewer:
    """Turns a pipeline's latents into a uint8 H×W×3 preview of ``size``."""

    size: tuple[int, int]
    decoder: Any | None  # AutoencoderTiny on the model's device, or None: linear approximation
    family: str

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        first = latents[:1]
        if self.decoder is not None:
            # Decode at the preview's resolution, not the output's: shrinking the latents
            # first (area mean) cuts the decoder's cost by the square of the ratio.
            target = (-(-self.size[1] // 8), -(-self.size[0] // 8))
            if target[0] < first.shape[2] and target[1] < first.shape[3]:
                first = torch.nn.functional.interpolate(first.float(), size=target, mode="area")
            decoded = self.decoder.decode(first.to(self.decoder.dtype)).sample[0]
            rgb = decoded.permute(1, 2, 0)
        else:
            factors, bias = _LATENT_RGB[self.family]
            weights = torch.tensor(factors, dtype=torch.float32, device=first.device)
            offset = torch.tensor(bias, dtype=torch.float32, device=first.device)
            rgb = torch.einsum("chw,cr->hwr", first[0].float(), weights) + offset
        pixels = ((rgb.float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
        image = Image.fromarray(pixels.cpu().numpy())
        if image.size != self.size:
            image = image.resize(self.size, Image.Resampling.BILINEAR)
        return np.asarray(image)


def previewer(
    loaded: LoadedModel, registry: Registry, cache_dir: Path, size: tuple[int, int]
) -> Previewer:
    """The previewer for ``loaded``: its registered decoder, loaded once, or the fallback."""
    if "decoder" not in loaded.preview:
        loaded.preview["decoder"] = _load_decoder(loaded, registry, cache_dir)
    return Previewer(preview_size(*size), loaded.preview["decoder"], loaded.entry.family)


def _load_decoder(loaded: LoadedModel, registry: Registry, cache_dir: Path) -> Any | None:
    from diffusers import AutoencoderTiny

    family = SHARED_PREVIEW.get(loaded.entry.family, loaded.entry.family)
    entry = registry.preview(family, tiny=loaded.entry.tiny)
    if entry is None:
        return None
    try:
        with quiet("diffusers.configuration_utils"):  # AutoencoderTiny's config warns on load
            decoder = load_part(entry, AutoencoderTiny, loaded.dtype, cache_dir)
    except ModelUnavailable as exc:
        log.warning("previews use the latent approximation: %s", exc)
        return None
    return decoder.to(loaded.device)
