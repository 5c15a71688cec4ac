"""The tiny model families: SD1.5- and SDXL-shaped pipelines with random weights, built offline.

They let the server, the tests and the demo run with no network and no GPU: the images are
noise, but every code path (tokenizer, text encoders, UNet with cross-attention and, for SDXL,
the text-time embedding, VAE with SD's 8× latent scale, scheduler) is the real diffusers code.

A tiny model is built once into ``<cache_dir>/tiny/<family>/`` with ``save_pretrained`` and then
loaded through ``from_pretrained(folder)`` like any downloaded model, so the loading path the
tests exercise is the one real models take. Weights come from a fixed seed, so every build of
the same :data:`VERSION` holds the same weights and the same seed gives the same noise anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

FAMILIES = ("sd15", "sdxl")
VERSION = 1  # bump when a config below changes: existing builds are then rebuilt
MARKER = "sfumato-tiny.json"  # written last: its presence means the folder is complete
SEED = 20240601

_TEXT_HIDDEN = 32
_MAX_TOKENS = 77  # CLIP's context; the pipelines pad prompts to the tokenizer's max length


def tiny_dir(cache_dir: Path, family: str) -> Path:
    return Path(cache_dir) / "tiny" / family


def is_built(folder: Path) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text())["version"] == VERSION)
    except (ValueError, KeyError, OSError):
        return False


def ensure_tiny(cache_dir: Path, family: str) -> Path:
    """Build the tiny ``family`` model into the cache unless a complete build is there.

    Builds into a temporary sibling folder and renames it into place, so a crash or a second
    process building at the same time never leaves a half-written model that looks complete.
    """
    if family not in FAMILIES:
        raise ValueError(f"tiny family {family!r} is not one of {', '.join(FAMILIES)}")
    return ensure_built(tiny_dir(cache_dir, family), lambda folder: build(family, folder))


def ensure_built(target: Path, build_into: Callable[[Path], None]) -> Path:
    """Run ``build_into(folder)`` unless ``target`` holds a complete build of this VERSION;
    ``build_into`` must write :data:`MARKER` last. Shared by the bases and the tiny parts.

    Processes sharing a cache (engine replicas on one host) take turns on a lock file: one
    builds, the others then find the build complete, and none replaces a build that another
    is already loading."""
    if is_built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(target):
        if is_built(target):  # another process built it while this one waited
            return target
        return _build(target, build_into)


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the rename below still never leaves half a model
        yield
        return
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(target: Path, build_into: Callable[[Path], None]) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build_into(scratch / "model")
        if target.exists():  # an older VERSION, or an incomplete folder from an old crash
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(scratch / "model", target)
        except OSError:
            if not is_built(target):  # not another process that won the race: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def build(family: str, folder: Path) -> None:
    """Write a complete tiny pipeline for ``family`` to ``folder`` (which must not exist)."""
    folder.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        tokenizer = _tokenizer()
        if family == "sd15":
            pipe: Any = StableDiffusionPipeline(
                vae=_vae(),
                text_encoder=CLIPTextModel(_text_config()),
                tokenizer=tokenizer,
                unet=_unet(sdxl=False),
                scheduler=_scheduler(),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            pipe = StableDiffusionXLPipeline(
                vae=_vae(),
                text_encoder=CLIPTextModel(_text_config()),
                text_encoder_2=CLIPTextModelWithProjection(_text_config()),
                tokenizer=tokenizer,
                tokenizer_2=tokenizer,
                unet=_unet(sdxl=True),
                scheduler=_scheduler(),
            )
    pipe.save_pretrained(folder)
    (folder / MARKER).write_text(json.dumps({"version": VERSION, "family": family}))


def _tokenizer() -> CLIPTokenizer:
    """A valid CLIP BPE tokenizer with no merges: every byte is its own token.

    CLIP's vocabulary is byte-level (GPT-2's byte→unicode table) with a ``</w>`` form of each
    symbol for word ends; with an empty merge list the 256 symbols, their ``</w>`` forms and the
    two special tokens are the whole vocabulary (514 ids).
    """
    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate([*symbols, *(s + "</w>" for s in symbols)])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, model_max_length=_MAX_TOKENS)


def byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte → printable unicode table, in byte order of the table."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _text_config() -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=514,
        hidden_size=_TEXT_HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=_MAX_TOKENS,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        projection_dim=_TEXT_HIDDEN,
        hidden_act="gelu",
    )


def _vae() -> AutoencoderKL:
    # Four levels, three downsamplings: latents are 1/8 of the image, as in SD and SDXL.
    return AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
        force_upcast=False,  # fp32 already; True makes SDXL pipelines re-cast it every call
    )


def _unet(*, sdxl: bool) -> UNet2DConditionModel:
    common = {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "norm_num_groups": 8,
    }
    if not sdxl:
        return UNet2DConditionModel(
            **common, cross_attention_dim=_TEXT_HIDDEN, attention_head_dim=8
        )
    # SDXL: both encoders' hidden states are concatenated (2 × 32), and pooled text + six
    # size/crop ids (6 × 8) enter through the text-time embedding (32 + 48 = 80).
    return UNet2DConditionModel(
        **common,
        cross_attention_dim=2 * _TEXT_HIDDEN,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=_TEXT_HIDDEN + 6 * 8,
    )


def _scheduler() -> EulerDiscreteScheduler:
    # SD's training schedule; Euler is deterministic (no per-step noise) and first-order, so
    # one callback per step and the same seed gives the same image.
    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
        steps_offset=1,
    )
