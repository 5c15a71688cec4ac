"""LoRA training on a base model: the diffusers + peft text-to-image LoRA recipe.

It reads top to bottom like diffusers' ``train_text_to_image_lora.py`` (and its SDXL twin):
check the run → load the base → encode the dataset once (VAE latent distributions, caption
embeddings: both encoders are frozen, so once is the same as every step) → LoRA layers on the
UNet's attention projections → loop (sample latents, add noise at a random timestep, predict
it, MSE to the noise or the velocity, AdamW) → save the LoRA where ``engine/lora.py`` loads it.

Deterministic for a seed: every random draw (the LoRA's initial A matrices, latent samples,
noise, timesteps) comes from generators seeded from it, drawn on the CPU and moved to the
device, and the image order per epoch comes from (seed, epoch) alone. A checkpoint holds the
LoRA weights, the optimizer's state, the step and the generator's state, so resuming takes
the very draws the uninterrupted run would have: the same final weights, bit for bit on the
CPU. Cancelling (``is_cancelled()``, polled before every step) writes a checkpoint at the
step reached and raises :class:`TrainingCancelled` naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler

from ..protocol.errors import SfumatoError
from ..registry import ModelEntry
from ..training import Dataset, DatasetError, TrainOptions
from .errors import JobCancelled
from .hashing import WeightHashes
from .loader import Loader, Pipeline

# The attention projections peft wraps, as in diffusers' LoRA training scripts.
TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
CHECKPOINTS = "checkpoints"
CHECKPOINTS_KEPT = 2
_EPOCH_SEED = 1_000_003  # the image order of epoch e comes from seed * this + e


class TrainingError(SfumatoError, ValueError):
    """A training run that cannot start (or resume); the message names the option and the fix."""


class TrainingCancelled(JobCancelled):
    """``is_cancelled()`` turned true; the run stopped after ``step`` with a checkpoint there.
    A JobCancelled, so the service ends a cancelled train job (or keeps it over a stop) as it
    does any job."""

    def __init__(self, step: int, checkpoint: Path | None, job_id: str = "") -> None:
        kept = f"; checkpoint {checkpoint} kept, continue with --resume" if checkpoint else ""
        SfumatoError.__init__(self, f"training cancelled after step {step}{kept}")
        self.job_id = job_id
        self.step = step
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainStep:
    step: int
    total: int
    loss: float


@dataclass(frozen=True)
class TrainOutput:
    lora: Path  # the .safetensors file, loadable with load_lora_weights(folder, weight_name=…)
    steps: int
    loss: float  # of the last step
    base_sha256: str
    resumed_from: int  # the checkpoint step it continued from; 0 for a fresh run
    losses: tuple[float, ...] = field(default_factory=tuple)  # of the steps this call ran


@dataclass
class _Encoded:
    """One sample, encoded once: its latent distribution (scaled) and its caption's embeddings."""

    mean: torch.Tensor
    std: torch.Tensor
    prompt: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL: the pooled text embedding
    time_ids: torch.Tensor | None = None  # SDXL: original size, crop, target size


def train_lora(
    dataset: Dataset,
    base: ModelEntry,
    name: str,
    out_dir: Path,
    options: TrainOptions,
    *,
    cache_dir: Path,
    device: str,
    resume: bool = False,
    on_step: Callable[[TrainStep], None] | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> TrainOutput:
    """Train a LoRA called ``name`` for ``base`` on ``dataset``; write it to
    ``out_dir/<name>.safetensors`` (checkpoints under ``out_dir/checkpoints``).

    Raises TrainingError (a run that cannot start or resume), TrainingCancelled, or the
    loader's ModelUnavailable for a base whose weights are missing."""
    options.check()
    out_dir = Path(out_dir)
    checkpoints = out_dir / CHECKPOINTS
    latest = _latest(checkpoints)
    if latest is not None and not resume:
        raise TrainingError(
            f"{out_dir} holds checkpoints of an earlier run (last: {latest.name}); continue it "
            "with --resume, or choose another --out"
        )
    if resume and latest is None:
        raise TrainingError(f"--resume: {checkpoints} holds no checkpoint to continue from")
    base_sha256 = WeightHashes(cache_dir).verify([base])[base.name]
    run = {
        "name": name, "base_model": base.name, "base_sha256": base_sha256,
        "dataset_sha256": dataset.sha256, **asdict(options),
    }  # fmt: skip
    if latest is not None:
        _check_resumable(latest, run)  # before the model loads: a refusal costs nothing
    loaded = Loader(cache_dir, device).load(base)
    pipe = loaded.base
    encoded = _encode(pipe, dataset, options.resolution, device, base.family)
    _offload_encoders(pipe, device)
    unet = pipe.unet
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    params = _add_lora(unet, options)
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=1e-2)
    generator = torch.Generator("cpu").manual_seed(options.seed)
    # fp16 on CUDA: autocast, and loss scaling so that small fp16 gradients do not flush to
    # zero (what accelerate's mixed precision does in diffusers' scripts); off elsewhere.
    half = device.startswith("cuda") and loaded.dtype == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=half)
    start = 0
    if latest is not None:
        start = _restore(latest, run, unet, optimizer, generator, scaler)
    if start >= options.steps:
        raise TrainingError(
            f"--resume: the checkpoint is at step {start}, which is already --steps "
            f"{options.steps}; give more --steps to train further"
        )
    autocast: Any = (
        torch.autocast("cuda", dtype=loaded.dtype)
        if device.startswith("cuda") and loaded.dtype != torch.float32
        else nullcontext()
    )
    state = (optimizer, generator, scaler)
    unet.train()
    losses: list[float] = []
    step = start
    saved = start
    while step < options.steps:
        if is_cancelled():
            where = _save(checkpoints, step, run, unet, *state) if step > saved else latest
            raise TrainingCancelled(step, where or _latest(checkpoints))
        batch = [encoded[i] for i in _indices(step, options, len(encoded))]
        with autocast:
            loss = _loss(unet, scheduler, batch, generator, device, loaded.dtype)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, options.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach().cpu()))
        if on_step is not None:
            on_step(TrainStep(step, options.steps, losses[-1]))
        if step % options.checkpoint_every == 0 or step == options.steps:
            latest = _save(checkpoints, step, run, unet, *state)
            saved = step
    unet.eval()
    lora = _write_lora(pipe, unet, out_dir, name)
    (out_dir / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    (out_dir / "dataset-manifest.txt").write_text(dataset.manifest, encoding="utf-8")
    return TrainOutput(lora, step, losses[-1] if losses else float("nan"), base_sha256, start,
                       tuple(losses))  # fmt: skip


def _encode(
    pipe: Pipeline, dataset: Dataset, resolution: int, device: str, family: str
) -> list[_Encoded]:
    """Each image resized (short side) and centre-cropped to ``resolution``², through the VAE
    (in fp32 when the VAE asks for it: SDXL's overflows in fp16), and each caption through the
    text encoder(s), without gradients."""
    from PIL import Image, ImageOps

    vae = pipe.vae
    upcast = bool(getattr(vae.config, "force_upcast", False)) and vae.dtype != torch.float32
    if upcast:
        vae.to(torch.float32)
    scaling = float(vae.config.scaling_factor)
    out = []
    with torch.no_grad():
        for sample in dataset.samples:
            try:
                with Image.open(sample.image) as opened:  # a photo's EXIF rotation applied
                    image = ImageOps.exif_transpose(opened).convert("RGB")
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                raise DatasetError(
                    sample.image,
                    (f"{sample.image} cannot be read as an image ({exc}); replace or remove it",),
                ) from None
            original = (image.height, image.width)
            scale = resolution / min(image.size)
            size = (max(resolution, round(image.width * scale)),
                    max(resolution, round(image.height * scale)))  # fmt: skip
            image = image.resize(size, Image.Resampling.BICUBIC)
            left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
            pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
            pixels = pixels.permute(2, 0, 1)[None].to(device, vae.dtype)
            dist = vae.encode(pixels).latent_dist
            # Pre-scaled by the VAE's latent scale: (mean + std·ε)·s = mean·s + (std·s)·ε.
            mean = dist.mean.float().cpu() * scaling
            std = dist.std.float().cpu() * scaling
            if family == "sdxl":
                prompt, _neg, pooled, _neg_pooled = pipe.encode_prompt(
                    prompt=sample.caption, device=device, num_images_per_prompt=1,
                    do_classifier_free_guidance=False,
                )  # fmt: skip
                time_ids = torch.tensor([[*original, top, left, resolution, resolution]])
                out.append(_Encoded(mean, std, prompt, pooled, time_ids.to(device, prompt.dtype)))
            else:
                prompt, _neg = pipe.encode_prompt(sample.caption, device, 1, False)
                out.append(_Encoded(mean, std, prompt))
    if upcast:
        vae.to(pipe.unet.dtype)
    return out


def _offload_encoders(pipe: Pipeline, device: str) -> None:
    """The VAE and text encoders are done once the dataset is encoded: off the accelerator,
    so the UNet's activations and gradients have its memory (SDXL's encoders are ~1.6 GB)."""
    if device == "cpu":
        return
    for name in ("vae", "text_encoder", "text_encoder_2"):
        part = getattr(pipe, name, None)
        if part is not None:
            part.to("cpu")
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _add_lora(unet: Any, options: TrainOptions) -> list[torch.nn.Parameter]:
    """peft LoRA layers on the attention projections, A gaussian from the seed, B zero (so
    step 0 is the base model); trainable in fp32 even when the UNet is fp16."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        config = LoraConfig(
            r=options.rank, lora_alpha=options.alpha, init_lora_weights="gaussian",
            target_modules=TARGET_MODULES,
        )  # fmt: skip
        unet.add_adapter(config)
    params = []
    for _name, param in unet.named_parameters():
        if param.requires_grad:
            param.data = param.data.float()
            params.append(param)
    return params


def _indices(step: int, options: TrainOptions, count: int) -> list[int]:
    """The samples of ``step`` (0-based): a fresh shuffle per epoch, from (seed, epoch) only,
    so a resumed run needs no saved order."""
    out = []
    for position in range(step * options.batch_size, (step + 1) * options.batch_size):
        epoch, at = divmod(position, count)
        order = torch.randperm(
            count, generator=torch.Generator().manual_seed(options.seed * _EPOCH_SEED + epoch)
        )
        out.append(int(order[at]))
    return out


def _loss(
    unet: Any,
    scheduler: Any,
    batch: list[_Encoded],
    generator: torch.Generator,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    mean = torch.cat([b.mean for b in batch])
    std = torch.cat([b.std for b in batch])
    latents = mean + std * torch.randn(mean.shape, generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(
        0, scheduler.config.num_train_timesteps, (len(batch),), generator=generator
    )
    latents, noise, timesteps = latents.to(device), noise.to(device), timesteps.to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    kwargs: dict[str, Any] = {}
    if batch[0].pooled is not None:
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.cat([b.pooled for b in batch if b.pooled is not None]),
            "time_ids": torch.cat([b.time_ids for b in batch if b.time_ids is not None]),
        }
    prompt = torch.cat([b.prompt for b in batch])
    pred = unet(noisy.to(dtype), timesteps, prompt, **kwargs).sample
    return torch.nn.functional.mse_loss(pred.float(), target.float())


def _save(
    folder: Path,
    step: int,
    run: dict[str, Any],
    unet: Any,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    scaler: torch.amp.GradScaler,
) -> Path:
    """``folder/step-NNNNNN``: LoRA weights (safetensors), optimizer + generator state, the run's
    options; written beside and renamed into place, the oldest beyond a few removed."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{step:06d}"
    scratch = Path(tempfile.mkdtemp(prefix=".step-", dir=folder))
    trained = {
        n: p.detach().cpu().contiguous() for n, p in unet.named_parameters() if p.requires_grad
    }
    save_file(trained, str(scratch / "lora.safetensors"))
    state = {
        "step": step, "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
        "scaler": scaler.state_dict(),
    }  # fmt: skip
    torch.save(state, scratch / "state.pt")
    (scratch / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(scratch, target)
    for old in sorted(p for p in folder.glob("step-*") if p.is_dir())[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _latest(folder: Path) -> Path | None:
    done = sorted(p for p in folder.glob("step-*") if (p / "state.pt").is_file())
    return done[-1] if done else None


def _restore(
    checkpoint: Path,
    run: dict[str, Any],
    unet: Any,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    scaler: torch.amp.GradScaler,
) -> int:
    """Load a checkpoint into the fresh LoRA, optimizer and generator; returns its step."""
    from safetensors.torch import load_file

    _check_resumable(checkpoint, run)
    weights = load_file(str(checkpoint / "lora.safetensors"))
    with torch.no_grad():
        for n, param in unet.named_parameters():
            if param.requires_grad:
                param.copy_(weights[n].to(param.device, param.dtype))
    state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["step"])


def _check_resumable(checkpoint: Path, run: dict[str, Any]) -> None:
    """Refuse a checkpoint made from another dataset, base or options (only --steps and
    --checkpoint-every may change on resume), naming the option that differs."""
    saved = json.loads((checkpoint / "run.json").read_text(encoding="utf-8"))
    for key, value in run.items():
        if key not in ("steps", "checkpoint_every") and saved.get(key) != value:
            flag = "--" + key.replace("_", "-").replace("learning-rate", "lr")
            raise TrainingError(
                f"--resume: {checkpoint} was made with {key} = {saved.get(key)!r}, this run "
                f"has {value!r}; resume with the same dataset, base and options "
                f"({flag}), or start afresh with another --out"
            )


def _write_lora(pipe: Pipeline, unet: Any, out_dir: Path, name: str) -> Path:
    """The LoRA in diffusers' format (what ``load_lora_weights`` reads), written beside and
    renamed into place."""
    from peft.utils import get_peft_model_state_dict

    out_dir.mkdir(parents=True, exist_ok=True)
    layers = {
        k: v.detach().cpu().float().contiguous() for k, v in get_peft_model_state_dict(unet).items()
    }
    scratch = Path(tempfile.mkdtemp(prefix=".lora-", dir=out_dir))
    try:
        type(pipe).save_lora_weights(
            scratch,
            unet_lora_layers=layers,
            weight_name="lora.safetensors",
            safe_serialization=True,
        )
        target = out_dir / f"{name}.safetensors"
        os.replace(scratch / "lora.safetensors", target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def train_on(engine: Any, base: str, train: Callable[..., TrainOutput]) -> TrainOutput:
    """Run ``train(entry, cache_dir=…, device=…)`` (:func:`train_lora` with its other
    arguments bound) for the base model ``base`` while holding ``engine`` (an
    :class:`~sfumato.engine.Engine`, the server's): its served model is unloaded first, since
    training loads its own copy of the base (whose UNet gets the LoRA layers) and a GPU rarely
    holds two; the next picture job loads again."""
    with engine._lock:
        entry = engine.registry.get(base)
        engine._loader.unload()
        return train(entry, cache_dir=engine.cache_dir, device=engine.device)
