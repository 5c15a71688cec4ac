"""Multiview jobs built from the analytic sphere (sfumato.engine.multiview_scene), shared by
the server and engine tests of task multiview."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from sfumato.engine.multiview_scene import render, sphere_maps
from sfumato.protocol import Array, Job, JobParams, MultiviewInputs, Task, View

SIDE = 64  # views (the smallest side a job takes)
TEXTURE = 64
EYES = [(4.0, 0.0, 0.6), (-2.0, 3.4, 0.6), (-2.0, -3.4, 0.6)]
UNIT_BOX = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)


def flat(matrix: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in matrix.reshape(16))


def scene_views(eyes: list[tuple[float, ...]] = EYES, side: int = SIDE) -> tuple[View, ...]:
    views = []
    for eye in eyes:
        p = render(eye, (side, side))
        views.append(
            View(
                Array.from_numpy(p.depth),
                Array.from_numpy(p.normal),
                Array.from_numpy(p.uv),
                Array.from_numpy(p.mask),
                flat(p.camera.world_to_camera),
                flat(p.camera.projection),
            )
        )
    return tuple(views)


def multiview_job(views: tuple[View, ...] | None = None, **params: Any) -> Job:
    position, normal, texels = sphere_maps(TEXTURE)
    inputs = MultiviewInputs(
        scene_views() if views is None else views,
        Array.from_numpy(position),
        Array.from_numpy(normal),
        Array.from_numpy(texels),
    )
    defaults: dict[str, Any] = {"prompt": "stone", "width": SIDE, "height": SIDE, "seed": 3}
    return Job(uuid.uuid4().hex, Task.MULTIVIEW, JobParams(**(defaults | params)), multiview=inputs)
