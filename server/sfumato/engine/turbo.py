"""Few-step models (registry ``turbo``): the sampling each needs, applied for one job.

- ``adversarial`` — SD-Turbo / SDXL-Turbo (adversarial diffusion distillation): 1–4 steps,
  no classifier-free guidance (guidance 0), Euler ancestral on "trailing" timesteps, as their
  model cards run them.
- ``lcm`` — an LCM LoRA on its family's base: 2–8 steps with the LCM scheduler and a guidance
  of at most 2 (the LoRA was distilled with guidance built in; more burns the image).

A job on such a model outside its step range is refused naming ``params.steps`` and the range
(few-step models fall apart past it); the guidance is set by the engine, since no other value
works. The pipeline's own scheduler comes back after the job: derived pipelines share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler

from ..protocol import ErrorCode, Job, JobRejected
from ..registry import ModelEntry


@dataclass(frozen=True)
class Sampling:
    kind: str
    steps: tuple[int, int]  # the range that works, inclusive
    max_guidance: float
    what: str  # for messages


SAMPLINGS = {
    "adversarial": Sampling("adversarial", (1, 4), 0.0, "a turbo model (SD-/SDXL-Turbo)"),
    "lcm": Sampling("lcm", (2, 8), 2.0, "an LCM LoRA"),
}


def sampling(base: ModelEntry, loras: Sequence[ModelEntry]) -> Sampling | None:
    """The few-step sampling a job's model and LoRAs call for (None: the model's own)."""
    kinds = [e.turbo for e in (base, *loras) if e.turbo]
    return SAMPLINGS[kinds[0]] if kinds else None


def adjust(job: Job, plan: Sampling | None) -> Job:
    """The job as the few-step model must run: steps checked, guidance set."""
    if plan is None:
        return job
    lo, hi = plan.steps
    if not lo <= job.params.steps <= hi:
        raise JobRejected(
            ErrorCode.BAD_FIELD,
            f"params.steps {job.params.steps}: {plan.what} runs {lo}–{hi} steps; set "
            f"params.steps to {min(max(job.params.steps, lo), hi)}, or pick another model",
            field="params.steps",
        )
    guidance = min(job.params.guidance, plan.max_guidance)
    return replace(job, params=replace(job.params, guidance=guidance))


@contextlib.contextmanager
def scheduled(pipe: Any, plan: Sampling | None) -> Iterator[None]:
    """``pipe`` samples with the plan's scheduler for the ``with`` block, then its own."""
    if plan is None:
        yield
        return
    own = pipe.scheduler
    if plan.kind == "adversarial":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(
            own.config, timestep_spacing="trailing"
        )
    else:
        pipe.scheduler = LCMScheduler.from_config(own.config)
    try:
        yield
    finally:
        pipe.scheduler = own
