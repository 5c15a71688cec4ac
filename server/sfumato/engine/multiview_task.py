"""The multiview task on the engine: paint the views in order with the pipelines, bake each
into the texture (docs/protocol.md 4.2.4; the geometry is multiview.py / multiview_bake.py).

The first view is a txt2img with the depth and normal ControlNets fed from its passes (what
texture_from_view does for one camera); each later view is an inpaint of the texture so far,
seen through its UV pass, where it is not yet covered well, with the same controls and
prompt, so that neighbouring views agree where they meet. With ``params.paint = position``
no pipeline runs: each view is painted with the world positions it sees, which checks a
host's passes, matrices and bake end to end.

Memory: one view's control maps and pipeline arguments at a time; the texture's grids are
allocated once. Progress counts the steps of the whole job; the stage names the view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..protocol.conditioning import Control, ControlKind
from ..protocol.messages import Job, Task, denoising_steps
from ..protocol.multiview import Coverage, MultiviewInputs, Paint, View
from .control import PreparedControl
from .loader import Pipeline
from .multiview import Camera, position_colours
from .multiview_bake import Bake, ViewGeometry, ViewStats, bake_views
from .tasks import Steps, generate, inpaint

PrepareFn = Callable[[tuple[Control, ...]], tuple[PreparedControl, ...]]
PipelineFn = Callable[[Task, tuple[PreparedControl, ...]], Pipeline]
StageFn = Callable[[str], None]


@dataclass
class ViewSteps(Steps):
    """Steps over the whole multiview job: a total known up front (the first view's steps,
    then int(steps × strength) per later view), previews of the texture so far."""

    total: int = 0
    texture_preview: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def callback(
        self, pipe: Pipeline, step: int, timestep: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        self.done += 1
        self.on_step(self.done, self.total, self._preview())
        if self.is_cancelled():
            pipe._interrupt = True  # the pipeline skips its remaining steps
            self.cancelled = True
        return kwargs

    def _preview(self) -> np.ndarray | None:
        every = self.preview_every
        if self.texture_preview is None or not every or self.done % every:
            return None
        return self.texture_preview()

    def advance(self, preview: np.ndarray | None = None) -> None:
        """One step done outside a pipeline (a view of the position paint)."""
        self.done += 1
        self.on_step(self.done, self.total, preview if preview is not None else self._preview())


def total_steps(job: Job) -> int:
    """Denoising steps the whole job runs (one per view for the position paint)."""
    assert job.multiview is not None
    n = len(job.multiview.views)
    if job.params.paint is Paint.POSITION:
        return n
    return job.params.steps + (n - 1) * denoising_steps(job.params.steps, job.params.strength)


def view_controls(view: View) -> tuple[Control, ...]:
    """The view's depth and normal passes as the ControlNets read them (4.2.3 conversions)."""
    return (Control(ControlKind.DEPTH, view.depth), Control(ControlKind.NORMAL, view.normal))


def run_multiview(
    job: Job,
    seed: int,
    steps: ViewSteps,
    on_stage: StageFn,
    prepare: PrepareFn | None = None,
    pipeline: PipelineFn | None = None,
) -> tuple[tuple[np.ndarray, ...], Coverage]:
    """Paint and bake every view; returns (texture RGBA, view 1 RGB, …) and the coverage.
    ``prepare`` and ``pipeline`` are needed unless the job's paint is ``position``."""
    mv: MultiviewInputs | None = job.multiview
    assert mv is not None, "Job.check guarantees multiview inputs"
    params = job.params
    size = (params.width, params.height)
    bake = Bake(mv.position.to_numpy(), mv.surface_normal.to_numpy(), mv.texels.to_numpy())
    steps.texture_preview = bake.preview
    views = [
        ViewGeometry(
            Camera.from_wire(v.world_to_camera, v.projection, size),
            v.depth.to_numpy(),
            v.uv.to_numpy(),
            v.mask.to_numpy(),
        )
        for v in mv.views
    ]
    n = len(views)
    if params.paint is Paint.POSITION:
        lo, hi = bake.bounds()
        if params.bounds:
            lo, hi = np.array(params.bounds[:3]), np.array(params.bounds[3:])

    def paint(i: int, init: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        on_stage(f"view {i + 1}/{n}")
        steps.check()
        if params.paint is Paint.POSITION:
            image = position_colours(views[i].camera, views[i].depth, lo, hi)
            steps.advance()
            return image
        assert prepare is not None and pipeline is not None
        controls = prepare(view_controls(mv.views[i]))
        if init is None or mask is None:
            pipe = pipeline(Task.GENERATE, controls)
            return generate(pipe, params, (seed,), steps, controls)[0]
        pipe = pipeline(Task.INPAINT, controls)
        return inpaint(pipe, params, init, mask[:, :, None], (seed,), steps, controls)[0]

    first: list[int] = []

    def after(i: int, stats: ViewStats) -> None:
        first.append(stats.new)
        steps.on_step(steps.done, steps.total, bake.preview())  # the texture with this view
        steps.check()  # a cancel between views

    images = bake_views(bake, views, paint, after)
    count = max(bake.island_count, 1)
    coverage = Coverage(bake.covered(), tuple(k / count for k in first))
    return (bake.texture(), *images), coverage
