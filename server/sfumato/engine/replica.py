"""One engine replica: an :class:`~.engine.Engine` on one device, for a Ray actor.

A plain class, with no Ray in it: the cluster side (``sfumato.service.replica_actor``, made a
Ray actor by ``sfumato.service.cluster``) constructs it inside the actor's process, so torch
is imported there and never in the front door. What it adds to the engine is what a replica
must know about itself: how many torch threads it may use (a CPU replica gets its share of
the cores, not all of them), and which base models it loaded, in order — the affinity the
front door schedules by, observable from outside.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import torch

from ..protocol import Job
from ..registry import Registry
from .engine import Engine, EngineOutput
from .loader import StatusFn
from .tasks import StepFn


class Replica:
    """An engine that counts its model loads; ``threads`` > 0 caps torch's CPU threads."""

    def __init__(
        self, registry: Registry, cache_dir: Path, device: str | None, threads: int = 0
    ) -> None:
        if threads > 0:  # before the first op: torch sizes its pools on first use
            torch.set_num_threads(threads)
            with contextlib.suppress(RuntimeError):  # already set in this process
                torch.set_num_interop_threads(threads)
        self.engine = Engine(registry, cache_dir=cache_dir, device=device)
        self.loads: list[str] = []  # base models loaded here, in order (one entry per load)

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def loaded(self) -> str | None:
        return self.engine.model

    def load(self, model: str, on_status: StatusFn | None = None) -> None:
        """Load ``model`` (a no-op when it is the loaded one), counting real loads."""
        before = self.engine.model
        self.engine.load(model, on_status=on_status)
        if self.engine.model != before and self.engine.model is not None:
            self.loads.append(self.engine.model)

    def execute(
        self,
        job: Job,
        on_step: StepFn,
        is_cancelled: Callable[[], bool],
        on_status: StatusFn | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> EngineOutput:
        """Load the job's model (``params.model``, resolved by the front door), then run it
        (``on_stage``: multiview's "view i/n", as in process)."""
        assert job.params.model is not None, "the front door resolves the model"
        self.load(job.params.model, on_status)
        return self.engine.run(job, on_step=on_step, is_cancelled=is_cancelled, on_stage=on_stage)

    def use_registry(self, registry: Registry, changed: tuple[str, ...]) -> None:
        """The front door's registry file changed: jobs from now on use ``registry``; the
        loaded model goes first when an entry it may hold (``changed``) changed."""
        if changed and self.engine.model is not None:
            self.engine.unload()
        self.engine.registry = registry

    def describe(self) -> str:
        return self.engine.describe()
