"""Whole-object texturing, host-neutral: the ``multiview`` job from a host's passes and baked
maps, and what its result says (docs/protocol.md, task multiview).

A host renders its views and bakes its maps in its own API and hands them here as protocol
arrays; this module builds the job (checked against the server's offer before anything is
sent) and turns the result into the texture, each view's picture and one line for the user.
No numpy, no host API: the Blender add-on uses it today, any host with cameras can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .hostoffer import HostError, Offer
from .protocol import Array, Job, JobParams, Result, Task
from .protocol.multiview import MAX_VIEWS, MultiviewInputs, View

__all__ = ["Matrix16", "TextureResult", "ViewPasses", "coverage_line", "multiview_job", "read"]

Matrix16 = tuple[float, ...]  # a 4×4 matrix, row-major


@dataclass(frozen=True)
class ViewPasses:
    """One camera's passes as protocol arrays, and its matrices (16 floats, row-major)."""

    depth: Array
    normal: Array
    uv: Array
    mask: Array
    world_to_camera: Matrix16
    projection: Matrix16


def multiview_job(
    job_id: str,
    params: JobParams,
    views: Sequence[ViewPasses],
    position: Array,
    surface_normal: Array,
    texels: Array,
    offer: Offer,
) -> Job:
    """The multiview job, refused (HostError naming the field and the fix) before sending
    when this server would refuse it: no ``multiview`` capability, too many views, maps of
    the wrong size or type, over its limits."""
    if not views:
        raise HostError(
            "no texture cameras to paint from: add some (Add Texture Cameras) first",
            "inputs.views",
        )
    if len(views) > MAX_VIEWS:
        raise HostError(
            f"{len(views)} texture cameras, but a multiview job takes at most {MAX_VIEWS}: "
            "delete some, or place them again with a lower budget",
            "inputs.views",
        )
    inputs = MultiviewInputs(
        tuple(
            View(v.depth, v.normal, v.uv, v.mask, tuple(v.world_to_camera), tuple(v.projection))
            for v in views
        ),
        position,
        surface_normal,
        texels,
    )
    job = Job(job_id, Task.MULTIVIEW, params, multiview=inputs)
    offer.check(job)
    return job


@dataclass(frozen=True)
class TextureResult:
    """A multiview result taken apart: the UV texture (RGBA, alpha 255 where covered), each
    view's painted image in order, the covered share of island texels and each view's part."""

    texture: Array
    views: tuple[Array, ...]
    covered: float
    per_view: tuple[float, ...]


def read(result: Result, view_count: int) -> TextureResult:
    """The result of a multiview job of ``view_count`` views; ValueError (with what to do)
    for one that is not such a result."""
    if len(result.images) != view_count + 1:
        raise ValueError(
            f"the multiview result of job {result.id} has {len(result.images)} images, not the "
            f"texture and {view_count} views; update the Sfumato server and run it again"
        )
    texture = result.images[0]
    if texture.channels != 4:
        raise ValueError(
            f"the texture of job {result.id} has {texture.channels} channels, not RGBA; update "
            "the Sfumato server and run it again"
        )
    coverage = result.coverage
    covered = coverage.covered if coverage is not None else 0.0
    per_view = coverage.views if coverage is not None else ()
    return TextureResult(texture, tuple(result.images[1:]), covered, tuple(per_view))


def coverage_line(covered: float, filled: float) -> str:
    """What the user reads: the share of the texture the views saw, and the share filled in
    from neighbours because no view saw it (both of the UV islands' texels)."""
    return f"{covered * 100:.1f} % covered; {filled * 100:.1f} % filled"
