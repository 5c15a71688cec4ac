"""Loading a registry entry's weights into a base pipeline, and deriving the task pipelines.

Every source ends in a diffusers loader: tiny models are built into the cache and loaded with
``from_pretrained(folder)``, like a ``dir:`` source; hub ids go through ``from_pretrained`` and the
local Hugging Face cache (offline when ``HF_HUB_OFFLINE=1``); ``file:`` checkpoints go through
``from_single_file``. One base pipeline is held at a time, because a GPU rarely fits two SDXLs;
img2img and inpaint pipelines are derived from it with ``from_pipe``, which shares its modules,
so the weights load once per model.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import torch
from diffusers import (
    StableDiffusionControlNetImg2ImgPipeline,
    StableDiffusionControlNetInpaintPipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.utils import deprecation_utils
from diffusers.utils import logging as diffusers_logging

from ..protocol.errors import ErrorCode, JobRejected
from ..protocol.messages import Task
from ..registry import ModelEntry
from .devices import choose_dtype
from .errors import ModelUnavailable
from .singlefile import family_config, ships
from .tiny import ensure_tiny, is_built, tiny_dir
from .tiny_parts import ensure_part

StatusFn = Callable[[str], None]
# diffusers' pipeline classes are assembled at runtime (lazy modules, dynamic components), so
# a type checker sees little of them; this alias marks where a pipeline object travels.
Pipeline: TypeAlias = Any

# diffusers renamed the loaders' `torch_dtype` to `dtype` (the old name warns); older releases,
# which pyproject still allows, know only `torch_dtype`.
DTYPE_KWARG = "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"

# The pipeline class per family and task. Inpaint runs on the base model's 4-channel UNet:
# diffusers' inpaint pipelines then denoise the whole latent and, after every step, put back the
# noised latents of the original image outside the mask ("legacy" inpainting). A dedicated
# 9-channel inpaint UNet blends better but is another model to register and download.
PIPELINES: dict[str, dict[Task, Any]] = {
    "sd15": {
        Task.GENERATE: StableDiffusionPipeline,
        Task.REFINE: StableDiffusionImg2ImgPipeline,
        Task.INPAINT: StableDiffusionInpaintPipeline,
    },
    "sdxl": {
        Task.GENERATE: StableDiffusionXLPipeline,
        Task.REFINE: StableDiffusionXLImg2ImgPipeline,
        Task.INPAINT: StableDiffusionXLInpaintPipeline,
    },
}
# SD 2.x (sd21: SD-Turbo, SD 2.1) is the SD 1.x architecture with another text encoder and
# UNet config: diffusers runs it with the same pipeline classes.
PIPELINES["sd21"] = PIPELINES["sd15"]
# The same three with ControlNets (one model, or a list: MultiControlNet).
CONTROL_PIPELINES: dict[str, dict[Task, Any]] = {
    "sd15": {
        Task.GENERATE: StableDiffusionControlNetPipeline,
        Task.REFINE: StableDiffusionControlNetImg2ImgPipeline,
        Task.INPAINT: StableDiffusionControlNetInpaintPipeline,
    },
    "sdxl": {
        Task.GENERATE: StableDiffusionXLControlNetPipeline,
        Task.REFINE: StableDiffusionXLControlNetImg2ImgPipeline,
        Task.INPAINT: StableDiffusionXLControlNetInpaintPipeline,
    },
}
CONTROL_PIPELINES["sd21"] = CONTROL_PIPELINES["sd15"]
# Outpaint is inpainting on a grown canvas, upscale is img2img over tiles.
PIPELINE_TASK = {Task.OUTPAINT: Task.INPAINT, Task.UPSCALE: Task.REFINE}
CONTROL_PIPELINES_KEPT = 8  # derived ControlNet pipelines are cheap, but not free: keep a few


@dataclass
class LoadedModel:
    """A base pipeline on its device, and the task pipelines derived from it so far."""

    entry: ModelEntry
    base: Pipeline
    device: str
    dtype: torch.dtype
    derived: dict[Task, Pipeline] = field(default_factory=dict)
    # What conditioning added to this model; it all goes when the model is unloaded.
    controlnets: dict[str, Any] = field(default_factory=dict)  # registry name → ControlNetModel
    controlled: dict[tuple[Task, tuple[str, ...]], Pipeline] = field(default_factory=dict)
    loras: set[str] = field(default_factory=set)  # adapter names loaded into the base
    preview: dict[str, Any] = field(default_factory=dict)  # "decoder" → AutoencoderTiny | None
    adapters: dict[str, Any] = field(default_factory=dict)  # references.py: IP-Adapter parts

    def pipeline(self, task: Task) -> Pipeline:
        """The pipeline for ``task``, sharing the base pipeline's modules (no copy of weights)."""
        task = PIPELINE_TASK.get(task, task)
        if task is Task.GENERATE:
            return self.base
        if task not in self.derived:
            self.derived[task] = self._derive(PIPELINES[self.entry.family][task])
        return self.derived[task]

    def control_pipeline(self, task: Task, names: tuple[str, ...]) -> Pipeline:
        """The ControlNet pipeline for ``task`` with the loaded ControlNets ``names``, in order.

        Derived with ``from_pipe`` (the base's modules are shared, ~10 ms) and kept for the
        next job with the same ControlNets; the oldest is dropped past a few."""
        task = PIPELINE_TASK.get(task, task)
        key = (task, names)
        if key not in self.controlled:
            models = [self.controlnets[name] for name in names]
            cls = CONTROL_PIPELINES[self.entry.family][task]
            self.controlled[key] = self._derive(
                cls, controlnet=models[0] if len(models) == 1 else models
            )
            while len(self.controlled) > CONTROL_PIPELINES_KEPT:
                del self.controlled[next(iter(self.controlled))]
        return self.controlled[key]

    def _derive(self, cls: Any, **components: Any) -> Pipeline:
        # from_pipe casts the shared modules to its dtype (default fp32!), which
        # would silently upcast the base pipeline too: always pass the loaded dtype.
        with quiet("diffusers.models.modeling_utils"):
            pipe = cls.from_pipe(self.base, **components, **{DTYPE_KWARG: self.dtype})
        pipe.set_progress_bar_config(disable=True)
        return pipe


class Loader:
    """Holds at most one loaded model; loading another unloads it first."""

    def __init__(self, cache_dir: Path, device: str) -> None:
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.current: LoadedModel | None = None

    def load(self, entry: ModelEntry, on_status: StatusFn | None = None) -> LoadedModel:
        """The loaded model for ``entry``; a no-op when it is already the current one."""
        if self.current is not None and self.current.entry == entry:
            return self.current
        status = on_status or (lambda _message: None)
        if entry.kind != "base":
            raise JobRejected(
                ErrorCode.UNKNOWN_MODEL,
                f"params.model {entry.name!r} is a {entry.kind}, not a base model; "
                "pick a base model (see `sfumato models`)",
                field="params.model",
            )
        self.unload()
        dtype = choose_dtype(self.device, tiny=entry.tiny)
        cls = PIPELINES[entry.family][Task.GENERATE]
        with _quiet_progress():
            pipe = _from_source(entry, cls, dtype, self.cache_dir, status)
        status(f"moving {entry.name} to {self.device}")
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.current = LoadedModel(entry, pipe, self.device, dtype)
        return self.current

    def unload(self) -> None:
        """Drop the current model and give its memory back before the next one loads."""
        if self.current is None:
            return
        self.current = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif self.device == "mps":
            torch.mps.empty_cache()


def _from_source(
    entry: ModelEntry,
    cls: Any,
    dtype: torch.dtype,
    cache_dir: Path,
    status: StatusFn,
) -> Pipeline:
    kwargs: dict[str, Any] = {DTYPE_KWARG: dtype}
    if entry.family in ("sd15", "sd21"):
        # No safety checker: Sfumato runs on the artist's own machine behind their own tools;
        # the studio registry (approved models) is where policy lives. It would also cost a
        # second model download and VRAM.
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    scheme, location = entry.scheme, entry.location
    if scheme == "tiny":
        if not is_built(tiny_dir(cache_dir, location)):
            status(f"building the tiny {location} model (random weights, first use only)")
        folder = ensure_tiny(cache_dir, location)
        status(f"loading tiny {location} model from {folder}")
        return cls.from_pretrained(folder, **kwargs)
    if scheme == "dir":
        folder = Path(location)
        if not (folder / "model_index.json").is_file():
            what = "has no model_index.json" if folder.is_dir() else "does not exist"
            raise ModelUnavailable(
                entry.name,
                f'model {entry.name!r}: folder {folder} {what}; point source = "dir:..." '
                "at a diffusers folder (one written by save_pretrained or downloaded with "
                "`hf download <repo> --local-dir <folder>`)",
            )
        status(f"loading {entry.name} from {folder}")
        return guarded(entry, lambda: cls.from_pretrained(folder, **kwargs), _dir_hint(folder))
    if scheme == "file":
        path = Path(location)
        if not path.is_file():
            raise ModelUnavailable(
                entry.name,
                f"model {entry.name!r}: checkpoint {path} does not exist; fix source = "
                '"file:..." in the registry or copy the checkpoint there',
            )
        if not entry.config and not ships(entry.family):
            raise ModelUnavailable(
                entry.name,
                f"model {entry.name!r}: sfumato ships no single-file configuration for the "
                f'{entry.family} family; set config = "<diffusers folder>" for it in the registry '
                "(its model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/ — "
                "e.g. a `hf download <repo> --local-dir <folder>` of an SD 2.x model)",
            )
        status(f"loading {entry.name} from {path.name}")
        # The family's configuration ships with sfumato, so this needs no hub (singlefile.py).
        config = Path(entry.config) if entry.config else family_config(entry.family, cache_dir)
        if not (config / "model_index.json").is_file():
            raise ModelUnavailable(
                entry.name,
                f"model {entry.name!r}: config folder {config} has no model_index.json; point "
                'config = "..." at a diffusers folder\'s configs (model_index.json, unet/, vae/, '
                "text_encoder/, tokenizer/, scheduler/) or remove it to use the family's",
            )
        hint = (
            f"the checkpoint does not fit the {entry.family} configuration in {config} (a "
            "missing or misnamed part). If it is another architecture (inpainting, "
            'v-prediction), set config = "<diffusers folder>" for it in the registry'
        )
        return guarded(
            entry,
            lambda: cls.from_single_file(
                str(path), config=str(config), local_files_only=True, **kwargs
            ),
            hint,
        )
    # hub
    status(f"loading {entry.name} ({location}) from the Hugging Face cache")
    hint = (
        f"its weights are not in this machine's Hugging Face cache. On a connected machine run "
        f"`huggingface-cli download {location}` (and copy the cache here), or download it to a "
        f'folder and set source = "dir:/path/to/folder" for {entry.name!r} in the registry'
    )
    return guarded(entry, lambda: cls.from_pretrained(location, **kwargs), hint)


def load_part(entry: ModelEntry, cls: Any, dtype: torch.dtype, cache_dir: Path) -> Any:
    """A ControlNet or preview decoder (``cls``, a diffusers model class) from any source.

    The same sources as base models; missing weights raise :class:`ModelUnavailable` with the
    command that fetches them."""
    kwargs: dict[str, Any] = {DTYPE_KWARG: dtype}
    location = entry.location
    if entry.scheme == "tiny":
        folder = ensure_part(cache_dir, entry.source)
        return cls.from_pretrained(folder, **kwargs)
    if entry.scheme == "file":
        return guarded(
            entry,
            lambda: cls.from_single_file(location, **kwargs),
            f'checkpoint {location} is missing or unreadable; fix source = "file:..."',
        )
    hint = (
        f"folder {location} is missing or incomplete; download the weights into it again"
        if entry.scheme == "dir"
        else f"its weights are not in this machine's Hugging Face cache. On a connected machine "
        f"run `huggingface-cli download {location}` (and copy the cache here), or download it "
        f'to a folder and set source = "dir:/path/to/folder" for {entry.name!r}'
    )
    return guarded(entry, lambda: cls.from_pretrained(location, **kwargs), hint)


def lora_weights(entry: ModelEntry, cache_dir: Path) -> tuple[str, dict[str, Any]]:
    """Where ``load_lora_weights`` finds ``entry``: a folder or repo id, plus the keyword
    that names a single file inside it (diffusers loads LoRA files by folder + weight_name)."""
    if entry.scheme == "tiny":
        return str(ensure_part(cache_dir, entry.source)), {}
    if entry.scheme == "file":
        path = Path(entry.location)
        if not path.is_file():
            raise ModelUnavailable(
                entry.name,
                f'LoRA {entry.name!r}: file {path} does not exist; fix source = "file:..." '
                "in the registry or copy the file there",
            )
        return str(path.parent), {"weight_name": path.name}
    return entry.location, {}


def guarded(entry: ModelEntry, load: Callable[[], Pipeline], hint: str) -> Pipeline:
    """Missing files (offline cache misses, absent shards) become :class:`ModelUnavailable`.

    huggingface_hub's offline and not-found errors all derive from OSError, and diffusers
    re-raises cache misses as OSError; other errors (a corrupt file, a bug) propagate as is.
    """
    try:
        return load()
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(
            entry.name,
            f"model {entry.name!r} ({entry.source}) cannot be loaded: {hint}. "
            f"(diffusers said: {first[:200]})",
        ) from exc


def _dir_hint(folder: Path) -> str:
    return f"a file under {folder} is missing or unreadable; download the model into it again"


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
    """Silence one logger below ERROR: from_pipe's dtype cast warns on every derivation,
    even when the dtype is unchanged, which would fill the server log with noise."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """No tqdm bars while loading: the server reports loading through ``on_status``."""
    import transformers

    both = (diffusers_logging, transformers.utils.logging)
    were_enabled = [m.is_progress_bar_enabled() for m in both]
    for module in both:
        module.disable_progress_bar()
    try:
        yield
    finally:
        for module, enabled in zip(both, were_enabled, strict=True):
            if enabled:
                module.enable_progress_bar()
