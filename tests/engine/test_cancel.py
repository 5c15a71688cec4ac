"""A cancel ends the job within one step of being observed, in every task family, at any step:
the first variant's, the last one's, between variants, between upscale tiles, at the very end.
Counted in steps (the engine's own on_step reports), never in seconds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from sfumato.engine import Engine, JobCancelled
from sfumato.protocol import Task

from .helpers import box_mask, job, picture


@dataclass
class CancelAt:
    """Says "cancelled" from the moment ``after`` steps were reported, and remembers how many
    steps had been reported when the engine first saw it say so."""

    after: int
    steps: list[int] = field(default_factory=list)
    totals: set[int] = field(default_factory=set)
    observed: int | None = None  # steps reported when the engine first saw the cancel

    def on_step(self, step: int, total: int, preview: np.ndarray | None = None) -> None:
        self.steps.append(step)
        self.totals.add(total)

    def is_cancelled(self) -> bool:
        if len(self.steps) < self.after:
            return False
        if self.observed is None:
            self.observed = len(self.steps)
        return True


def cancelled_run(engine: Engine, task: Task, after: int, **params: object) -> CancelAt:
    rec = CancelAt(after)
    image = mask = None
    if task is not Task.GENERATE:
        image = picture(48, 64)
    if task is Task.INPAINT:
        mask = box_mask(48, 64, (8, 8, 40, 56))
    with pytest.raises(JobCancelled) as caught:
        engine.run(job(task, image=image, mask=mask, seed=2, **params),
                   on_step=rec.on_step, is_cancelled=rec.is_cancelled)  # fmt: skip
    assert rec.observed is not None, "the engine never asked whether the job was cancelled"
    # within one step of the cancel being seen, and the error says how far it got
    assert len(rec.steps) <= rec.observed + 1
    assert caught.value.step == len(rec.steps)
    assert rec.steps == list(range(1, len(rec.steps) + 1))  # no step reported twice or skipped
    assert len(rec.totals) == 1  # the total never changes mid-job
    return rec


# generate with 2 variants of 3 steps: a step of the first variant, its last step, the first
# step of the second variant, the job's very last step
@pytest.mark.parametrize("after", [1, 2, 3, 4, 6])
def test_generate_stops_within_a_step_anywhere_across_variants(engine: Engine, after: int) -> None:
    rec = cancelled_run(engine, Task.GENERATE, after, steps=3, variants=2)
    assert rec.totals == {6}
    assert rec.observed == after  # seen at the first step after the cancel: not one later


@pytest.mark.parametrize(
    ("task", "params"),
    [
        (Task.REFINE, {"steps": 8, "strength": 0.5, "variants": 2}),
        (Task.INPAINT, {"steps": 4, "strength": 1.0, "variants": 2}),
        (Task.OUTPAINT, {"steps": 3, "strength": 1.0, "expand": (8, 0, 8, 0), "variants": 2}),
        (Task.UPSCALE, {"steps": 4, "strength": 0.5, "scale": 2}),  # 2 steps × 4 tiles
    ],
)
@pytest.mark.parametrize("after", [1, 2, 3])
def test_every_task_stops_within_a_step(
    engine: Engine, task: Task, params: dict[str, object], after: int
) -> None:
    rec = cancelled_run(engine, task, after, **params)
    (total,) = rec.totals
    assert len(rec.steps) < total  # it really stopped early


def test_a_cancel_before_the_first_step_runs_none(engine: Engine) -> None:
    rec = CancelAt(0)
    with pytest.raises(JobCancelled) as caught:
        engine.run(job(seed=1, steps=3), on_step=rec.on_step, is_cancelled=rec.is_cancelled)
    assert rec.steps == [] and rec.observed == 0 and caught.value.step == 0
