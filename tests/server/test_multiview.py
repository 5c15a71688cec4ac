"""Task multiview on a real server (loopback websocket, the tiny model): a 3-view job end to
end, the position paint over the wire, cancel within a view, and bad inputs refused with typed
errors naming the field while the server carries on (issue 11)."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from sfumato.engine.multiview_scene import sphere_maps
from sfumato.protocol import (
    Cancel,
    Cancelled,
    Error,
    ErrorCode,
    Fetch,
    Job,
    Paint,
    Progress,
    Result,
    Task,
    View,
    encode,
)
from tests.multiview_jobs import EYES, SIDE, TEXTURE, UNIT_BOX, multiview_job, scene_views

from .conftest import Peer, finished


def test_three_views_end_to_end(peer: Peer) -> None:
    # 2 steps, then 1 per later view; guidance 1 runs no unconditional pass (half the work)
    job = multiview_job(steps=2, strength=0.5, guidance=1.0)
    peer.send(job)
    messages = peer.until(finished(job.id))
    result = messages[-1]
    assert isinstance(result, Result), result
    progress = [m for m in messages if isinstance(m, Progress) and m.stage.startswith("view")]
    stages = [m.stage for m in progress]
    assert stages == sorted(stages) and set(stages) == {"view 1/3", "view 2/3", "view 3/3"}
    assert [m.step for m in progress] == sorted(m.step for m in progress)
    assert {m.total for m in progress} == {4} and progress[-1].step == 4
    # after each view, the texture so far as the preview
    previews = [m for m in progress if m.preview is not None]
    assert [m.stage for m in previews] == ["view 1/3", "view 2/3", "view 3/3"]
    assert all(m.preview.shape == (TEXTURE, TEXTURE, 3) for m in previews)  # type: ignore[union-attr]

    texture = result.images[0].to_numpy()
    assert texture.shape == (TEXTURE, TEXTURE, 4)
    assert set(np.unique(texture[..., 3])) <= {0, 255}
    assert np.all(texture[texture[..., 3] == 0] == 0)
    assert [i.shape for i in result.images[1:]] == [(SIDE, SIDE, 3)] * 3
    assert result.task is Task.MULTIVIEW and result.seeds == (3,)
    coverage = result.coverage
    assert coverage is not None and len(coverage.views) == 3
    covered = np.count_nonzero(texture[..., 3] == 255) / TEXTURE**2  # every texel is island
    assert coverage.covered == pytest.approx(covered)
    assert sum(coverage.views) == pytest.approx(coverage.covered)
    # 3 views of 64²: each sees a cap of the sphere, its grazing rim within the feather
    assert coverage.covered > 0.35 and all(v > 0.1 for v in coverage.views)


def test_position_paint_over_the_wire_bakes_the_position_map(peer: Peer) -> None:
    """The host-side check end to end: arrays, matrices and row order through the codec."""
    job = multiview_job(paint=Paint.POSITION, bounds=UNIT_BOX)
    peer.send(job)
    result = peer.until(finished(job.id))[-1]
    assert isinstance(result, Result), result
    texture = result.images[0].to_numpy()
    covered = texture[..., 3] == 255
    position = sphere_maps(TEXTURE)[0]
    expected = np.rint(np.clip((position + 1) / 2, 0, 1) * 255)
    error = np.abs(texture[..., :3].astype(float) - expected)[covered]
    assert covered.mean() > 0.35 and error.max() <= 2
    # the stored result, fetched again, is the same: texture, views and coverage
    peer.send(Fetch(job.id))
    again = peer.until(finished(job.id))[-1]
    assert isinstance(again, Result) and again.coverage == result.coverage
    assert again.images == result.images


def test_cancel_within_a_view(peer: Peer) -> None:
    """Over the wire, within the first view (tests/engine/test_multiview_engine.py cancels
    between views and within a later one, at exact points)."""
    job = multiview_job(steps=40, guidance=1.0)  # 40 + 2 × 30 steps: the cancel lands early
    peer.send(job)
    peer.until(lambda m: isinstance(m, Progress) and m.stage == "view 1/3" and m.step >= 2)
    peer.send(Cancel(job.id))
    rest = peer.until(finished(job.id))
    assert isinstance(rest[-1], Cancelled)
    steps = [m.step for m in rest if isinstance(m, Progress)]
    assert max(steps, default=2) < 40  # view 1 never finished
    assert not any(isinstance(m, Progress) and m.stage != "view 1/3" for m in rest)


def raw(job: Job, edit: Any) -> bytes:
    """The job's frame with its header edited (what a buggy host might send)."""
    chunks = encode(job)
    header = msgpack.unpackb(bytes(chunks[0]), raw=False)
    edit(header)
    return msgpack.packb(header, use_bin_type=True) + b"".join(bytes(c) for c in chunks[1:])


def without(path: tuple[str | int, ...]) -> Any:
    def edit(header: dict[str, Any]) -> None:
        node: Any = header
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def small_view() -> View:
    return scene_views([EYES[0]], side=32)[0]


BAD: list[tuple[str, Any, ErrorCode, str]] = [
    ("a pass of another size", lambda: multiview_job((*scene_views()[:1], small_view())),
     ErrorCode.BAD_ARRAY, "inputs.views[1].depth"),
    ("a view without its uv pass", lambda: raw(multiview_job(), without(("inputs", "views", 0, "uv"))),
     ErrorCode.BAD_FIELD, "inputs.views[0].uv"),
    ("no position map", lambda: raw(multiview_job(), without(("inputs", "position"))),
     ErrorCode.BAD_FIELD, "inputs.position"),
    ("17 views", lambda: multiview_job(scene_views()[:1] * 17), ErrorCode.BAD_FIELD, "inputs.views"),
    ("no views", lambda: multiview_job(()), ErrorCode.BAD_FIELD, "inputs.views"),
    ("two variants", lambda: multiview_job(variants=2), ErrorCode.BAD_FIELD, "params.variants"),
]  # fmt: skip


def test_bad_inputs_are_typed_errors_naming_the_field(peer: Peer) -> None:
    for what, build, code, field in BAD:
        frame = build()
        job_id = frame.id if isinstance(frame, Job) else None
        peer.send(frame)
        error = peer.until(lambda m: isinstance(m, Error))[-1]
        assert isinstance(error, Error)
        assert (error.code, error.field) == (code, field), (what, error)
        assert job_id is None or error.id == job_id
        assert field in error.message or field.split(".")[-1] in error.message, what
    # the server is fine: a good job on the same connection runs
    job = multiview_job(paint=Paint.POSITION)
    peer.send(job)
    assert isinstance(peer.until(finished(job.id))[-1], Result)
