"""Reference images (``inputs.references``) through diffusers' IP-Adapter support.

For one job: the registry's adapter for the model's family is loaded into the shared UNet
with ``load_ip_adapter`` (one adapter per reference, from one state dict kept in memory, so
each reference has its own scale), each picture is encoded once by the adapter's CLIP image
encoder, and the pipeline gets ``ip_adapter_image_embeds`` (a zero embedding for the
unconditional half, as diffusers uses). Weight, block selection (``kind``) and the start/end
schedule are the adapter processors' per-reference scales, set before every step from the
step callback (``Steps.schedule``). When the job ends, the UNet's own attention processors
are put back and the adapter's projection removed, so the next job without references is
bit-identical to one on a fresh model. A reference of weight 0 is dropped before anything
loads: exactly the job without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..protocol.direction import Reference, ReferenceKind
from ..registry import ModelEntry, Registry
from ..registry.adapters import FIELD, ip_adapter
from . import images
from .errors import ModelUnavailable
from .loader import LoadedModel, Pipeline, _quiet_progress, quiet
from .tiny_adapter import ADAPTER_FILE
from .tiny_parts import ensure_part

_PARTS_KEY = "ip_adapter"


@dataclass(frozen=True)
class AdapterParts:
    """What a reference job needs beyond the base model, loaded once per base model."""

    name: str
    state: dict[str, dict[str, torch.Tensor]]  # {"image_proj": …, "ip_adapter": …}, on the CPU
    encoder: Any  # CLIPVisionModelWithProjection on the model's device and dtype
    side: int  # the encoder's input side


def parts(loaded: LoadedModel, registry: Registry, cache_dir: Path) -> AdapterParts:
    """The adapter and encoder for ``loaded``'s family, kept on the LoadedModel (they go
    when the model is unloaded)."""
    adapter, encoder_entry = ip_adapter(registry, loaded.entry.family, tiny=loaded.entry.tiny)
    cached = loaded.adapters.get(_PARTS_KEY)
    if isinstance(cached, AdapterParts) and cached.name == adapter.name:
        return cached
    state = _adapter_state(adapter, cache_dir)
    encoder = _encoder(encoder_entry, cache_dir).to(loaded.device, loaded.dtype)
    found = AdapterParts(adapter.name, state, encoder, int(encoder.config.image_size))
    loaded.adapters[_PARTS_KEY] = found
    return found


@contextlib.contextmanager
def applied(
    base: Pipeline,
    references: tuple[Reference, ...],
    adapter: AdapterParts,
    guidance: float,
    steps: Any,
) -> Iterator[dict[str, Any]]:
    """Load one adapter per reference into ``base``'s UNet for the job; yields the pipeline
    keywords (``ip_adapter_image_embeds``) and sets ``steps.schedule``; undone on exit."""
    refs = tuple(r for r in references if r.weight > 0)
    if not refs:
        yield {}
        return
    unet = base.unet
    saved = dict(unet.attn_processors)
    had_extractor = getattr(base, "feature_extractor", None) is not None
    n = len(refs)
    # load_ip_adapter warns that no encoder was loaded: this engine encodes the pictures
    with quiet("diffusers.loaders.ip_adapter"):
        base.load_ip_adapter(
            [adapter.state] * n, subfolder=[""] * n, weight_name=[""] * n,
            image_encoder_folder=None,
        )  # fmt: skip
    try:
        embeds = [_embed(adapter, r, guidance > 1.0) for r in refs]
        processors = [
            (name, p) for name, p in unet.attn_processors.items() if hasattr(p, "to_k_ip")
        ]

        def schedule(k: int, total: int) -> None:
            for name, processor in processors:
                processor.scale = [
                    r.weight if _acts(r, name) and r.start <= k / max(total, 1) < r.end else 0.0
                    for r in refs
                ]

        schedule(0, 1)
        steps.schedule = schedule
        yield {"ip_adapter_image_embeds": embeds}
    finally:
        steps.schedule = None
        base.unload_ip_adapter()
        unet.set_attn_processor(saved)
        if not had_extractor and getattr(base, "feature_extractor", None) is not None:
            base.feature_extractor = None
            base.register_to_config(feature_extractor=[None, None])


def _acts(reference: Reference, processor: str) -> bool:
    """Which UNet blocks a reference steers: ``style`` the up blocks, ``content`` the down
    blocks, none given every block (docs/protocol.md 4.2.6)."""
    if reference.kind is ReferenceKind.STYLE:
        return processor.startswith("up_blocks")
    if reference.kind is ReferenceKind.CONTENT:
        return processor.startswith("down_blocks")
    return True


@torch.no_grad()
def _embed(adapter: AdapterParts, reference: Reference, cfg: bool) -> torch.Tensor:
    """(2 or 1, 1, D): the picture's image embedding, after a zero one for the unconditional
    half when the job uses guidance. The picture: RGBA over white, the centre square, resized
    (bicubic) to the encoder's side, normalised with CLIP's mean and deviation."""
    rgb = images.to_rgb(reference.image.to_numpy())
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb[top : top + side, left : left + side])
    pixels = np.asarray(square.resize((adapter.side,) * 2, Image.Resampling.BICUBIC), np.float32)
    mean = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    x = torch.from_numpy(((pixels / 255.0 - mean) / std).transpose(2, 0, 1)[None].copy())
    encoder = adapter.encoder
    embeds = encoder(x.to(encoder.device, encoder.dtype)).image_embeds[:, None, :]
    return torch.cat([torch.zeros_like(embeds), embeds]) if cfg else embeds


def _adapter_state(entry: ModelEntry, cache_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors import safe_open

    path = _file(entry, cache_dir, ADAPTER_FILE)
    state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            group, _, rest = key.partition(".")
            if group in state:
                state[group][rest] = f.get_tensor(key)
    return state


def _encoder(entry: ModelEntry, cache_dir: Path) -> Any:
    from transformers import CLIPVisionModelWithProjection

    if entry.scheme == "tiny":
        folder: str | Path = ensure_part(cache_dir, entry.source)
        options: dict[str, Any] = {}
    elif entry.scheme == "hub":
        folder, options = entry.location, {"subfolder": entry.weight or None}
    else:
        folder, options = Path(entry.location) / entry.weight, {}
    try:
        with _quiet_progress():
            return CLIPVisionModelWithProjection.from_pretrained(folder, **options)
    except OSError as exc:
        raise _missing(entry, exc) from exc


def _file(entry: ModelEntry, cache_dir: Path, tiny_name: str) -> Path:
    """The adapter's weights file on this machine (a hub file from the local cache only when
    HF_HUB_OFFLINE is set, as every other part)."""
    if entry.scheme == "tiny":
        return ensure_part(cache_dir, entry.source) / tiny_name
    if entry.scheme == "hub":
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(entry.location, entry.weight))
        except (OSError, ValueError) as exc:
            raise _missing(entry, exc) from exc
    path = Path(entry.location) / entry.weight if entry.weight else Path(entry.location)
    if not path.is_file():
        raise ModelUnavailable(
            entry.name,
            f"IP-Adapter {entry.name!r}: file {path} does not exist; copy the adapter there or "
            "fix its source and weight in the registry",
            field=FIELD,
        )
    return path


def _missing(entry: ModelEntry, exc: Exception) -> ModelUnavailable:
    where = f"{entry.location}/{entry.weight}" if entry.weight else entry.location
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelUnavailable(
        entry.name,
        f"{entry.kind} {entry.name!r} ({where}) is not on this machine: on a connected machine "
        f"run `huggingface-cli download {entry.location} {entry.weight or ''}`".rstrip()
        + f" and copy the cache here, or set a dir: source for it. (said: {first})",
        field=FIELD,
    )
