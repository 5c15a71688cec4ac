"""Helpers for the engine tests: a step recorder, job builders and test pictures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sfumato.engine import Engine, EngineOutput
from sfumato.protocol import Array, Control, Job, JobParams, Task


@dataclass
class Recorder:
    """Collects on_step calls; optionally cancels once a given number of steps were seen."""

    cancel_after: int | None = None
    steps: list[tuple[int, int]] = field(default_factory=list)
    previews: dict[int, np.ndarray] = field(default_factory=dict)  # step → preview image

    def on_step(self, step: int, total: int, preview: np.ndarray | None = None) -> None:
        self.steps.append((step, total))
        if preview is not None:
            self.previews[step] = preview

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.steps) >= self.cancel_after


def run(engine: Engine, job: Job, recorder: Recorder | None = None) -> EngineOutput:
    rec = recorder or Recorder()
    return engine.run(job, on_step=rec.on_step, is_cancelled=rec.is_cancelled)


def job(task: Task = Task.GENERATE, *, image: np.ndarray | None = None,
        mask: np.ndarray | None = None, controls: tuple[Control, ...] = (),
        **params: object) -> Job:  # fmt: skip
    defaults: dict[str, object] = {"prompt": "a red barn", "width": 64, "height": 64, "steps": 3}
    defaults.update(params)
    return Job(
        id="job-1",
        task=task,
        params=JobParams(**defaults),  # type: ignore[arg-type]
        image=None if image is None else Array.from_numpy(image),
        mask=None if mask is None else Array.from_numpy(mask),
        controls=controls,
    )


def picture(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth-ish uint8 test picture (gradients plus noise), not all one colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1
    )
    noisy = base + rng.integers(-20, 21, size=base.shape)
    rgb = np.clip(noisy, 0, 255).astype(np.uint8)
    if channels == 4:
        rgb = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=-1)
    return rgb


def box_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 H×W×1, 255 inside ``box`` = (top, left, bottom, right), 0 elsewhere."""
    mask = np.zeros((height, width, 1), np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = 255
    return mask
