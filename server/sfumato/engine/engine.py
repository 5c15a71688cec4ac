"""The engine the service calls: one loaded model, one job at a time, typed output.

``Engine`` is the seam between the service (threads, queues, sockets) and diffusers. It is
blocking by design; the service runs it on a worker thread and passes two plain callables,
``on_step`` and ``is_cancelled``, so that the engine knows nothing of asyncio or sessions.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..protocol.conditioning import Control
from ..protocol.direction import region_loras
from ..protocol.errors import ErrorCode
from ..protocol.messages import SEED_MAX, Job, JobParams, Task
from ..protocol.multiview import Coverage, Paint
from ..registry import ModelEntry, NoControlNet, Registry
from ..registry.adapters import FIELD as REFERENCES
from ..registry.adapters import ip_adapter
from . import direction, lora, turbo
from .control import PreparedControl
from .controlnets import prepare_controls
from .devices import choose_device
from .errors import ModelUnavailable, bad_input
from .hashing import WeightHashes
from .loader import LoadedModel, Loader, Pipeline, StatusFn
from .multiview_task import ViewSteps, run_multiview, total_steps
from .previews import previewer
from .resizing import outpaint, upscale
from .tasks import StepFn, Steps, run_task
from .tiling import tiled

TINY_WARNING = "tiny model with random weights: images are noise"
# Upscale tile side per model: what the family was trained at; tiny uses small tiles so that
# even a test image spans several.
UPSCALE_TILE = {"tiny": 64, "sd15": 512, "sd21": 512, "sdxl": 1024}  # sd21: SD-Turbo's 512²


@dataclass(frozen=True)
class EngineOutput:
    """One finished job: uint8 H×W×3 images, one per variant, and what reproduces them."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    model: str
    tiny: bool
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "load", "run"
    hashes: dict[str, str] = field(default_factory=dict)  # registry name → weights sha256
    coverage: Coverage | None = None  # task multiview: how much of the texture was painted


class Engine:
    """Runs jobs on models from ``registry``; tiny models are built into ``cache_dir``.

    Cheap to construct (it only resolves the device); weights load on :meth:`load` or on the
    first :meth:`run`. Calls are serialised by a lock: one GPU, one job at a time.
    """

    def __init__(
        self,
        registry: Registry,
        cache_dir: Path,
        device: str | None = None,
        upscale_tile: int | None = None,
    ) -> None:
        self.registry = registry
        self.cache_dir = Path(cache_dir)
        self.device: str = choose_device(device)
        if upscale_tile is not None and (upscale_tile < 64 or upscale_tile % 8):
            raise ValueError(f"upscale_tile {upscale_tile} must be a multiple of 8 and at least 64")
        self.upscale_tile = upscale_tile  # None: per model, UPSCALE_TILE
        self._loader = Loader(self.cache_dir, self.device)
        self._lock = threading.Lock()
        self._hashes = WeightHashes(self.cache_dir)

    @property
    def model(self) -> str | None:
        """The registry name of the loaded model, if any."""
        current = self._loader.current
        return None if current is None else current.entry.name

    def load(self, model_name: str | None = None, on_status: StatusFn | None = None) -> None:
        """Load ``model_name`` (None: the registry's default), unloading any other model.

        Blocking; a no-op when that model is already loaded. Raises UnknownModel,
        ModelUnavailable, or ValueError for an entry that is not a base model.
        """
        with self._lock:
            self._load(self.registry.get(model_name), on_status)

    def unload(self) -> None:
        """Free the loaded model's memory (the next job loads again)."""
        with self._lock:
            self._loader.unload()

    def run(
        self,
        job: Job,
        *,
        on_step: StepFn,
        is_cancelled: Callable[[], bool],
        on_stage: Callable[[str], None] | None = None,
    ) -> EngineOutput:
        """Run ``job`` (already checked by the protocol) and return its images.

        ``on_step(step, total, preview)`` is called after every denoising step, counting from
        1 across all variants (and upscale tiles); ``preview`` is a small uint8 H×W×3 image
        every ``params.preview_every`` steps, else None. ``is_cancelled()`` is polled after
        every step and between variants, and a True answer ends the job with JobCancelled
        within one step. ``on_stage(name)`` hears each new stage (multiview: "view 2/8").
        """
        with self._lock:
            entry = self.registry.get(job.params.model)
            start = time.perf_counter()
            loaded = self._load(entry, None)
            seeds = pick_seeds(job.params)
            if job.task is Task.MULTIVIEW:
                view_steps = ViewSteps(
                    job.id, 1, on_step, is_cancelled, None, job.params.preview_every,
                    total=total_steps(job),
                )  # fmt: skip
                return self._multiview(job, entry, loaded, seeds, view_steps, on_stage, start)
            size = job.output_size()
            # Conditioning: everything a job names is resolved (and loaded) before a step runs.
            controls = prepare_controls(job, loaded, self.registry, self.cache_dir, size, seeds[0])
            loras = region_loras(job.params.loras, job.regions)  # region LoRAs: whole image
            lora.activate(loaded, loras, self.registry, self.cache_dir)
            adapter = direction.prepare(job, loaded, self.registry, self.cache_dir)
            used = [entry, *(self.registry.get(lo.name) for lo in loras)]
            hashes = self._hashes.verify([*used, *(c.entry for c in controls)])
            if adapter is not None:  # the IP-Adapter and its image encoder: pinned as any entry
                pair = ip_adapter(self.registry, entry.family, tiny=entry.tiny)
                hashes |= self._hashes.verify(pair, field=REFERENCES)
            pipe = self._pipeline(loaded, job.task, controls)
            plan = turbo.sampling(entry, [self.registry.get(lo.name) for lo in loras])
            job = turbo.adjust(job, plan)  # few-step models: their steps and guidance
            preview = None
            if job.params.preview_every:
                preview = previewer(loaded, self.registry, self.cache_dir, size)
            loaded_at = time.perf_counter()
            steps = Steps(
                job.id, len(seeds), on_step, is_cancelled, preview, job.params.preview_every
            )
            parts = (pipe.unet, pipe.vae, getattr(pipe, "controlnet", None))
            with (
                tiled(parts, job.params.tile),
                turbo.scheduled(pipe, plan),
                direction.applied(pipe, job, loaded, adapter, steps) as ready,
            ):
                images = self._run_task(ready, job, seeds, steps, controls)
            done = time.perf_counter()
        return EngineOutput(
            images=images,
            seeds=seeds,
            model=entry.name,
            tiny=entry.tiny,
            timings={"load": loaded_at - start, "run": done - loaded_at},
            hashes=hashes,
        )

    def _multiview(
        self,
        job: Job,
        entry: ModelEntry,
        loaded: LoadedModel,
        seeds: tuple[int, ...],
        steps: ViewSteps,
        on_stage: Callable[[str], None] | None,
        start: float,
    ) -> EngineOutput:
        """The multiview task (multiview_task.py): its depth and normal ControlNets are
        resolved and loaded before the first step, like any job's controls."""
        size = job.output_size()
        lora.activate(loaded, job.params.loras, self.registry, self.cache_dir)
        used = [entry, *(self.registry.get(lo.name) for lo in job.params.loras)]
        if job.params.paint is not Paint.POSITION:
            with _model_blame():
                family, tiny = loaded.entry.family, loaded.entry.tiny
                used += [
                    self.registry.controlnet(family, k, tiny=tiny) for k in ("depth", "normal")
                ]
        hashes = self._hashes.verify(used)

        def prepare(controls: tuple[Control, ...]) -> tuple[PreparedControl, ...]:
            with _model_blame():
                return prepare_controls(
                    replace(job, controls=controls), loaded, self.registry, self.cache_dir, size,
                    seeds[0],
                )  # fmt: skip

        def pipeline(task: Task, controls: tuple[PreparedControl, ...]) -> Pipeline:
            return self._pipeline(loaded, task, controls)

        loaded_at = time.perf_counter()
        images, coverage = run_multiview(
            job, seeds[0], steps, on_stage or (lambda stage: None), prepare, pipeline
        )
        return EngineOutput(
            images=images,
            seeds=seeds,
            model=entry.name,
            tiny=entry.tiny,
            timings={"load": loaded_at - start, "run": time.perf_counter() - loaded_at},
            hashes=hashes,
            coverage=coverage,
        )

    def describe(self) -> str:
        """One line for the server log: what is loaded, where, in which precision."""
        current = self._loader.current
        if current is None:
            return f"no model loaded; device {self.device}; default model {self.registry.default}"
        line = (
            f"model {current.entry.name} ({current.entry.family}) on {current.device}, "
            f"{str(current.dtype).removeprefix('torch.')}"
        )
        return f"{line}; {TINY_WARNING}" if current.entry.tiny else line

    def _load(self, entry: ModelEntry, on_status: StatusFn | None) -> LoadedModel:
        return self._loader.load(entry, on_status)

    @staticmethod
    def _pipeline(
        loaded: LoadedModel, task: Task, controls: tuple[PreparedControl, ...]
    ) -> Pipeline:
        if not controls:
            return loaded.pipeline(task)
        return loaded.control_pipeline(task, tuple(c.entry.name for c in controls))

    def _run_task(
        self,
        pipe: Pipeline,
        job: Job,
        seeds: tuple[int, ...],
        steps: Steps,
        controls: tuple[PreparedControl, ...],
    ) -> tuple[np.ndarray, ...]:
        if job.task not in (Task.OUTPAINT, Task.UPSCALE):
            return run_task(pipe, job, seeds, steps, controls)
        if job.image is None:  # Job.check guarantees it; this keeps the types honest
            raise bad_input(
                f"task {job.task.value} needs inputs.image; send the picture to work on",
                "inputs.image",
                ErrorCode.BAD_FIELD,
            )
        image = job.image.to_numpy()
        if job.task is Task.OUTPAINT:
            return outpaint(pipe, job.params, image, seeds, steps, controls)
        entry = self.registry.get(job.params.model)
        tile = self.upscale_tile or UPSCALE_TILE["tiny" if entry.tiny else entry.family]
        return upscale(pipe, job.params, image, seeds, steps, tile, controls)


@contextlib.contextmanager
def _model_blame() -> Iterator[None]:
    """A multiview job names no ControlNet: one its model's family lacks, or whose weights
    are missing, is reported at params.model (the message names the ControlNet)."""
    try:
        yield
    except (NoControlNet, ModelUnavailable) as exc:
        exc.field = "params.model"
        raise


def pick_seeds(params: JobParams) -> tuple[int, ...]:
    """Seeds seed, seed+1, … one per variant (wrapping past 2³²−1, the protocol's largest).

    Without a seed the engine draws one, so that every result can be reproduced from the seeds
    it reports.
    """
    if params.seed is None:  # drawn so that seed + variants − 1 stays in range: no wrap
        first = secrets.randbelow(SEED_MAX + 2 - params.variants)
    else:
        first = params.seed
    return tuple((first + i) % (SEED_MAX + 1) for i in range(params.variants))
