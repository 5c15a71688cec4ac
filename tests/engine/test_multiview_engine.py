"""Task multiview on the engine (tiny-sd, real pipelines): cancel lands between views and
within a later view's steps, at exactly the points the progress reports (issue 11)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sfumato.engine import Engine, JobCancelled
from sfumato.protocol import Paint
from tests.multiview_jobs import multiview_job


class Recorder:
    """Progress and stages as the worker would hear them; cancels when ``stop`` says so."""

    def __init__(self, stop: Any) -> None:
        self.stop = stop
        self.stage = ""
        self.events: list[tuple[str, int, int, bool]] = []

    def on_stage(self, name: str) -> None:
        self.stage = name

    def on_step(self, step: int, total: int, preview: np.ndarray | None) -> None:
        self.events.append((self.stage, step, total, preview is not None))

    def is_cancelled(self) -> bool:
        return bool(self.events) and self.stop(self.events[-1])


def run(engine: Engine, recorder: Recorder, **params: Any) -> Any:
    job = multiview_job(model="tiny-sd", **params)
    return engine.run(
        job,
        on_step=recorder.on_step,
        is_cancelled=recorder.is_cancelled,
        on_stage=recorder.on_stage,
    )


def test_cancel_between_views(engine: Engine) -> None:
    """Cancel as soon as view 1 is blended (its preview sent): view 2 never starts."""
    recorder = Recorder(lambda event: event[0] == "view 1/3" and event[3])
    with pytest.raises(JobCancelled):
        run(engine, recorder, paint=Paint.POSITION)
    assert {stage for stage, *_ in recorder.events} == {"view 1/3"}
    assert recorder.events[-1] == ("view 1/3", 1, 3, True)


def test_cancel_within_a_later_view(engine: Engine) -> None:
    """3 steps per view: cancel at the first step of view 2 (step 4 of 9); the pipeline
    stops there and view 3 never starts."""
    recorder = Recorder(lambda event: event[1] == 4)
    with pytest.raises(JobCancelled):
        run(engine, recorder, steps=3, strength=1.0, guidance=1.0)
    stages = [stage for stage, *_ in recorder.events]
    assert stages[0] == "view 1/3" and stages[-1] == "view 2/3"
    assert max(step for _, step, _, _ in recorder.events) == 4
    assert {total for _, _, total, _ in recorder.events} == {9}


def test_a_finished_job_reports_every_step_and_view(engine: Engine) -> None:
    recorder = Recorder(lambda event: False)
    out = run(engine, recorder, steps=2, strength=0.5, guidance=1.0)
    assert [e[1] for e in recorder.events if not e[3]] == [1, 2, 3, 4]
    assert [e[0] for e in recorder.events if e[3]] == ["view 1/3", "view 2/3", "view 3/3"]
    assert out.coverage is not None and len(out.images) == 4
    assert out.images[0].shape[2] == 4 and out.seeds == (3,)
