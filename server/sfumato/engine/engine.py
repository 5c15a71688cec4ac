"""The engine the service calls: one loaded model, one job at a time, typed output.

``Engine`` is the seam between the service (threads, queues, sockets) and diffusers. It is
blocking by design; the service runs it on a worker thread and passes two plain callables,
``on_step`` and ``is_cancelled``, so that the engine knows nothing of asyncio or sessions.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..protocol.messages import SEED_MAX, Job, JobParams
from ..registry import ModelEntry, Registry
from .devices import choose_device
from .loader import LoadedModel, Loader, StatusFn
from .tasks import Steps, run_task

TINY_WARNING = "tiny model with random weights: images are noise"


@dataclass(frozen=True)
class EngineOutput:
    """One finished job: uint8 H×W×3 images, one per variant, and what reproduces them."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    model: str
    tiny: bool
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "load", "run"


class Engine:
    """Runs jobs on models from ``registry``; tiny models are built into ``cache_dir``.

    Cheap to construct (it only resolves the device); weights load on :meth:`load` or on the
    first :meth:`run`. Calls are serialised by a lock: one GPU, one job at a time.
    """

    def __init__(self, registry: Registry, cache_dir: Path, device: str | None = None) -> None:
        self.registry = registry
        self.cache_dir = Path(cache_dir)
        self.device: str = choose_device(device)
        self._loader = Loader(self.cache_dir, self.device)
        self._lock = threading.Lock()

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
        on_step: Callable[[int, int], None],
        is_cancelled: Callable[[], bool],
    ) -> EngineOutput:
        """Run ``job`` (already checked by the protocol) and return its images.

        ``on_step(step, total)`` is called after every denoising step, counting from 1 across
        all variants; ``is_cancelled()`` is polled after every step and between variants, and
        a True answer ends the job with JobCancelled within one step.
        """
        with self._lock:
            entry = self.registry.get(job.params.model)
            start = time.perf_counter()
            loaded = self._load(entry, None)
            pipe = loaded.pipeline(job.task)
            loaded_at = time.perf_counter()
            seeds = pick_seeds(job.params)
            steps = Steps(job.id, len(seeds), on_step, is_cancelled)
            images = run_task(pipe, job, seeds, steps)
            done = time.perf_counter()
        return EngineOutput(
            images=images,
            seeds=seeds,
            model=entry.name,
            tiny=entry.tiny,
            timings={"load": loaded_at - start, "run": done - loaded_at},
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
