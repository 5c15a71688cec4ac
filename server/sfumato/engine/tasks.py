"""The three base task families: generate (txt2img), refine (img2img) and inpaint.

Each reads like a diffusers pipeline call, top to bottom: check inputs → prepare (images to
the pipeline's size, one generator per variant) → call the pipeline once per variant with
``callback_on_step_end`` → collect uint8 images at the output size. Progress, previews and
cancellation live in :class:`Steps`, the one callback every task passes to its pipeline.
ControlNet maps (``controls``, prepared at the output size by ``control.py``) are resized to
the pipeline's size and passed along; outpaint and upscale (``resizing.py``) build on these.

Variants run one after another rather than as one batch: variant *i* with seed *s + i* is then
the very image a single run with seed *s + i* gives (a batched UNet call is not bit-identical
to a single one), memory stays that of one image, and a cancel lands within one step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..protocol.errors import ErrorCode
from ..protocol.limits import Limits
from ..protocol.messages import Job, JobParams, Task
from . import images
from .control import PreparedControl, pipeline_kwargs
from .errors import JobCancelled, bad_input
from .loader import Pipeline

StepFn = Callable[[int, int, "np.ndarray | None"], None]  # (step, total, preview or None)
CancelFn = Callable[[], bool]
PreviewFn = Callable[[Any], np.ndarray]


@dataclass
class Steps:
    """Counts denoising steps across all variants of a job and carries the cancel request.

    The per-image total is read from the pipeline (``num_timesteps``, set before its loop):
    that is the number of steps it will really run, ``int(steps * strength)`` for refine and
    inpaint, whatever the scheduler, so the client's progress bar ends at 100 %. Upscale calls
    the pipeline once per tile: ``calls`` is the pipeline calls per variant.

    Every ``preview_every`` steps of the job, ``preview`` turns the step's latents into a
    small image that travels with that step's report.
    """

    job_id: str
    variants: int
    on_step: StepFn
    is_cancelled: CancelFn
    preview: PreviewFn | None = None
    preview_every: int = 0
    calls: int = 1
    done: int = 0
    cancelled: bool = False
    # (k, n): set per-step conditioning before step k of a call's n (references.py); after
    # a call's last step, k is 0 again for the next call (variant or tile).
    schedule: Callable[[int, int], None] | None = None

    def callback(
        self, pipe: Pipeline, step: int, timestep: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        self.done += 1
        if self.schedule is not None:
            total = int(pipe.num_timesteps)
            self.schedule(0 if step + 1 >= total else step + 1, total)
        image = None
        if self.preview is not None and self.preview_every and self.done % self.preview_every == 0:
            image = self.preview(kwargs["latents"])
        self.on_step(self.done, int(pipe.num_timesteps) * self.variants * self.calls, image)
        if self.is_cancelled():
            # The pipeline checks this flag at the top of each step and skips the rest; it
            # still decodes the latents it has, which run() then throws away.
            pipe._interrupt = True
            self.cancelled = True
        return kwargs

    def check(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was seen (or arrives between variants)."""
        if self.cancelled or self.is_cancelled():
            raise JobCancelled(self.job_id, self.done)


def run_task(
    pipe: Pipeline,
    job: Job,
    seeds: Sequence[int],
    steps: Steps,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """Dispatch generate, refine and inpaint to the task family's function."""
    if job.task is Task.GENERATE:
        return generate(pipe, job.params, seeds, steps, controls)
    if job.image is None:  # Job.check guarantees it; this keeps the types honest
        raise bad_input(
            f"task {job.task.value} needs inputs.image; send the picture to work on",
            "inputs.image",
            ErrorCode.BAD_FIELD,
        )
    image = job.image.to_numpy()
    if job.task is Task.REFINE:
        return refine(pipe, job.params, image, seeds, steps, controls)
    if job.mask is None:
        raise bad_input(
            "task inpaint needs inputs.mask; send a mask, 255 where to regenerate",
            "inputs.mask",
            ErrorCode.BAD_FIELD,
        )
    return inpaint(pipe, job.params, image, job.mask.to_numpy(), seeds, steps, controls)


def generate(
    pipe: Pipeline,
    params: JobParams,
    seeds: Sequence[int],
    steps: Steps,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """txt2img at params.width × params.height (the protocol checked both are multiples of 8)."""
    size = (params.width, params.height)
    control = pipeline_kwargs(controls, size, "image")
    return per_seed(
        pipe, params, seeds, steps, size, dict(control, width=params.width, height=params.height)
    )


def refine(
    pipe: Pipeline,
    params: JobParams,
    image: np.ndarray,
    seeds: Sequence[int],
    steps: Steps,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """img2img: noise the image to ``params.strength`` and denoise; output has the input's size."""
    check_strength(params)
    rgb = images.to_rgb(image)
    size = (rgb.shape[1], rgb.shape[0])
    work = images.work_size(*size)
    init = images.to_pil(rgb, work)
    control = pipeline_kwargs(controls, work, "control_image")
    return per_seed(
        pipe, params, seeds, steps, size, dict(control, image=init, strength=params.strength)
    )


def inpaint(
    pipe: Pipeline,
    params: JobParams,
    image: np.ndarray,
    mask: np.ndarray,
    seeds: Sequence[int],
    steps: Steps,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """Regenerate where the mask is 255; where it is 0 the input's pixels come back exactly."""
    check_strength(params, Task.INPAINT)
    rgb = images.to_rgb(image)
    plain_mask = images.to_mask(mask)
    if plain_mask.shape != rgb.shape[:2]:
        raise bad_input(
            f"inputs.mask is {plain_mask.shape[1]}×{plain_mask.shape[0]} but inputs.image is "
            f"{rgb.shape[1]}×{rgb.shape[0]}; send a mask of the image's size",
            "inputs.mask",
        )
    size = (rgb.shape[1], rgb.shape[0])
    work = images.work_size(*size)
    init = images.to_pil(rgb, work)
    mask_image = images.to_pil(plain_mask, work, mask=True)
    kwargs = dict(
        pipeline_kwargs(controls, work, "control_image"), image=init, mask_image=mask_image,
        width=work[0], height=work[1], strength=params.strength,
    )  # fmt: skip
    generated = per_seed(pipe, params, seeds, steps, size, kwargs)
    return tuple(images.paste_back(rgb, image, plain_mask) for image in generated)


def per_seed(
    pipe: Pipeline,
    params: JobParams,
    seeds: Sequence[int],
    steps: Steps,
    size: tuple[int, int],
    kwargs: dict[str, Any],
) -> tuple[np.ndarray, ...]:
    """One pipeline call per seed (variants one after another, so variant i is bit-identical
    to a single run with its seed), cancellation checked around each, outputs at ``size``."""
    out = []
    for seed in seeds:
        steps.check()
        result = pipe(**common(params, seed, steps), **kwargs)
        steps.check()
        out.append(images.from_pipeline(result.images[0], size))
    return tuple(out)


def common(params: JobParams, seed: int, steps: Steps) -> dict[str, Any]:
    """Arguments every task passes. The generator lives on the CPU so that a seed gives the
    same starting noise on every device (diffusers moves the noise to the pipeline's device)."""
    return {
        "prompt": params.prompt,
        # None, not "": SDXL then uses zero embeddings for an empty negative, as it was trained.
        "negative_prompt": params.negative or None,
        "num_inference_steps": params.steps,
        "guidance_scale": params.guidance,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "output_type": "np",
        "callback_on_step_end": steps.callback,
    }


def check_strength(params: JobParams, task: Task = Task.REFINE) -> None:
    """diffusers runs int(steps × strength) steps and fails on zero. The decoder refuses such
    jobs before they queue (``JobParams.check_strength``); this is the same rule and message
    for a caller that builds a :class:`Job` itself."""
    params.check_strength(task, Limits(max_steps=max(params.steps, Limits().max_steps)))
