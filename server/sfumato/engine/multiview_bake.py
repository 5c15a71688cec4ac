"""The texture being painted by the multiview task, and the loop over its views.

A :class:`Bake` holds the texture as two full-size grids, the weighted colour sum (three
planes) and the weight, so that every view is two passes over arrays:

* :meth:`Bake.init_and_mask` resamples the texture into a view through its UV pass (the init
  image) and marks the target pixels not yet covered well (the inpaint mask);
* :meth:`Bake.add_view` projects each island texel into the view (position → camera →
  pixel), keeps the ones the view really sees (facing it, in front, on the target's mask away
  from its edge, depth matching the depth pass), weighs them by facing angle and feather, and
  adds their colours to the texture.

Speed (benchmarks/multiview.py): numpy is memory-bound here, and an N×3 matmul or a 3-channel
gather is 20–60× slower than the same work on separate planes. So the island texels are kept
as planes (x, y, z, normal x, y, z) sorted by 32 × 32 texture tiles; per view, whole tiles
that cannot face the camera or lie outside its frustum are skipped (a bounding sphere and a
normal cone per tile), and the rest are processed in cache-sized runs. Per-view temporaries
are freed when the view is done, so memory does not grow with the views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .multiview import (
    COS_POWER,
    DEPTH_ABS,
    DEPTH_REL,
    GREY,
    WELL_COVERED,
    Camera,
    feather,
    quad_min,
)

TILE = 32  # texels per tile side (the culling unit)
RUN = 1 << 16  # texels per processed run: its temporaries stay in the CPU's cache


@dataclass
class ViewStats:
    """What one view added: texels it gave weight to, and those no view had before."""

    seen: int
    new: int


@dataclass(frozen=True)
class _ViewGrids:
    """One view's per-pixel inputs, flattened planes of H·W (quad: the footprint feather)."""

    width: int
    depth: np.ndarray
    quad: np.ndarray  # min feather over the 2×2 footprint whose top-left pixel is here
    share: np.ndarray | None  # the inpaint mask as 0 … 1 (None: all 1)
    colour: tuple[np.ndarray, np.ndarray, np.ndarray]


def _bilinear(
    plane: np.ndarray, width: int, idx: np.ndarray, fx: np.ndarray, fy: np.ndarray
) -> np.ndarray:
    top = plane[idx] * (1 - fx) + plane[idx + 1] * fx
    bottom = plane[idx + width] * (1 - fx) + plane[idx + width + 1] * fx
    out: np.ndarray = top * (1 - fy) + bottom * fy
    return out


class Bake:
    """The texture being painted: per texel a weighted colour sum and a weight."""

    def __init__(self, position: np.ndarray, surface_normal: np.ndarray, texels: np.ndarray):
        self.height, self.width = int(position.shape[0]), int(position.shape[1])
        n = self.height * self.width
        islands = np.flatnonzero(np.asarray(texels).reshape(n) >= 128)
        rows, cols = np.divmod(islands, self.width)
        tiles_across = -(-self.width // TILE)
        tile = (rows // TILE) * tiles_across + cols // TILE
        order = np.argsort(tile, kind="stable")
        self.texel = islands[order]  # flat texel index of each island texel, tile by tile
        tile = tile[order]
        pos = np.asarray(position, np.float32).reshape(n, 3)[self.texel]
        nrm = np.asarray(surface_normal, np.float32).reshape(n, 3)[self.texel]
        length = np.linalg.norm(nrm, axis=1, keepdims=True)
        nrm = (nrm / np.where(length > 0, length, 1.0)).astype(np.float32)
        self.p = tuple(np.ascontiguousarray(pos[:, k]) for k in range(3))
        self.n = tuple(np.ascontiguousarray(nrm[:, k]) for k in range(3))
        self.n_dot_p = np.einsum("ij,ij->i", nrm, pos).astype(np.float32)
        self._tiles(tile, pos, nrm)
        self.color_sum = np.zeros((3, n), np.float32)  # Σ weight × colour (0 … 255), planes
        self.weight = np.zeros(n, np.float32)

    def _tiles(self, tile: np.ndarray, pos: np.ndarray, nrm: np.ndarray) -> None:
        """Per tile: its run of texels, bounding sphere and normal cone (cos of its angle)."""
        if not tile.size:
            self.start = self.end = np.zeros(0, np.int64)
            self.centre = self.axis = np.zeros((0, 3))
            self.radius = self.cone = np.zeros(0)
            return
        self.start = np.flatnonzero(np.r_[True, tile[1:] != tile[:-1]])
        self.end = np.r_[self.start[1:], tile.size]
        count = (self.end - self.start)[:, None]
        p64, n64 = pos.astype(np.float64), nrm.astype(np.float64)
        self.centre = np.add.reduceat(p64, self.start, axis=0) / count
        spread = np.linalg.norm(p64 - np.repeat(self.centre, count[:, 0], axis=0), axis=1)
        self.radius = np.maximum.reduceat(spread, self.start) * 1.001 + 1e-6
        axis = np.add.reduceat(n64, self.start, axis=0)
        length = np.linalg.norm(axis, axis=1, keepdims=True)
        self.axis = axis / np.where(length > 1e-9, length, 1.0)
        along = np.einsum("ij,ij->i", n64, np.repeat(self.axis, count[:, 0], axis=0))
        self.cone = np.where(length[:, 0] > 1e-9, np.minimum.reduceat(along, self.start), -1.0)

    @property
    def island_count(self) -> int:
        return int(self.texel.size)

    def covered(self) -> float:
        """The fraction of island texels with weight > 0."""
        if not self.island_count:
            return 0.0
        return float(np.count_nonzero(self.weight[self.texel] > 0)) / self.island_count

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The island texels' position bounding box (min, max), for the position paint."""
        if not self.island_count:
            return np.zeros(3), np.ones(3)
        lo = np.array([float(p.min()) for p in self.p])
        hi = np.array([float(p.max()) for p in self.p])
        return lo, hi

    # ------------------------------------------------------------------ texture → view

    def init_and_mask(
        self, uv: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The texture so far seen through a view's UV pass: (init uint8 H×W×3, sampled
        weight float32 H×W, inpaint mask uint8 H×W: 255 on target pixels whose sampled
        weight is below WELL_COVERED). Bilinear, weighted by the accumulated weight."""
        h, w = uv.shape[0], uv.shape[1]
        tw, th = self.width, self.height
        target = np.flatnonzero(np.asarray(mask).reshape(h * w) >= 128)
        flat_uv = np.asarray(uv, np.float32).reshape(h * w, 2)[target]
        tx = np.clip(flat_uv[:, 0] * tw - 0.5, 0.0, tw - 1.0)
        ty = np.clip((1.0 - flat_uv[:, 1]) * th - 0.5, 0.0, th - 1.0)
        x0, y0 = np.floor(tx), np.floor(ty)
        fx, fy = tx - x0, ty - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        x1, y1 = np.minimum(x0 + 1, tw - 1), np.minimum(y0 + 1, th - 1)
        corners = (y0 * tw + x0, y0 * tw + x1, y1 * tw + x0, y1 * tw + x1)
        weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)

        def sample(plane: np.ndarray) -> np.ndarray:
            out: np.ndarray = sum(plane[c] * b for c, b in zip(corners, weights, strict=True))
            return out

        weight = sample(self.weight)
        painted = weight > 0
        init = np.full((3, h * w), GREY, np.uint8)
        for k in range(3):
            values = sample(self.color_sum[k])[painted] / weight[painted]
            init[k, target[painted]] = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
        sampled = np.zeros(h * w, np.float32)
        sampled[target] = weight
        regenerate = np.zeros(h * w, np.uint8)
        regenerate[target] = np.where(weight < WELL_COVERED, 255, 0)
        return (
            np.ascontiguousarray(init.T).reshape(h, w, 3),
            sampled.reshape(h, w),
            regenerate.reshape(h, w),
        )

    # ------------------------------------------------------------------ view → texture

    def add_view(
        self,
        camera: Camera,
        depth: np.ndarray,
        mask: np.ndarray,
        image: np.ndarray,
        painted: np.ndarray | None = None,
    ) -> ViewStats:
        """Project one painted view into the texture and blend it in by weight.

        ``depth`` (H×W×1 view-space depth), ``mask`` (H×W×1 uint8, 255 = target), ``image``
        (H×W×3 uint8, the view as painted), ``painted`` (H×W uint8 inpaint mask of a later
        view, None for the first: every target pixel counts)."""
        h, w = camera.height, camera.width
        if h < 2 or w < 2:
            return ViewStats(0, 0)
        quad = np.zeros(h * w, np.float32)
        quad.reshape(h, w)[:-1, :-1] = quad_min(feather(mask)).reshape(h - 1, w - 1)
        rgb = np.asarray(image).reshape(h * w, 3)
        grids = _ViewGrids(
            width=w,
            depth=np.ascontiguousarray(np.asarray(depth, np.float32).reshape(h * w)),
            quad=quad,
            share=None
            if painted is None
            else np.asarray(painted, np.float32).reshape(h * w) * np.float32(1 / 255),
            colour=tuple(rgb[:, k].astype(np.float32) for k in range(3)),  # type: ignore[arg-type]
        )
        stats = ViewStats(0, 0)
        eye = camera.eye().astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):  # once: it costs a ufunc reset
            for run in self._runs(camera):
                self._add_run(camera, eye, grids, run, stats)
        return stats

    def _runs(self, camera: Camera) -> Iterator[slice]:
        """Slices of the texel planes worth projecting: runs of tiles that may face the
        camera and touch its frustum, cut to at most RUN texels."""
        if not self.start.size:
            return
        planes = camera.frustum_planes()
        normals = np.linalg.norm(planes[:, :3], axis=1)
        inside = np.all(
            self.centre @ planes[:, :3].T + planes[:, 3] >= -self.radius[:, None] * normals, axis=1
        )
        # n · (camera − p) ≤ |camera − centre| · cos(max(0, angle to the cone)) + radius
        towards = np.asarray(camera.toward(self.centre), np.float64)
        distance = np.linalg.norm(towards, axis=1)
        cos_view = np.einsum("ij,ij->i", self.axis, towards) / np.maximum(distance, 1e-12)
        gap = np.arccos(np.clip(cos_view, -1, 1)) - np.arccos(np.clip(self.cone, -1, 1))
        bound = np.cos(np.clip(gap, 0.0, np.pi))
        facing = bound > -1e-6 if camera.orthographic else distance * bound + self.radius > 0
        keep = np.flatnonzero(inside & facing)
        if not keep.size:
            return
        starts, ends = self.start[keep], self.end[keep]
        breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        for a, b in zip(
            starts[np.r_[0, breaks]], ends[np.r_[breaks - 1, keep.size - 1]], strict=True
        ):
            for s in range(int(a), int(b), RUN):
                yield slice(s, min(s + RUN, int(b)))

    def _add_run(
        self, camera: Camera, eye: np.ndarray, g: _ViewGrids, run: slice, stats: ViewStats
    ) -> None:
        """One run of texels: project, test, weigh, blend (``eye``: the camera's position,
        or for an orthographic camera its unit view axis)."""
        w, h = camera.width, camera.height
        px, py, pz = (p[run] for p in self.p)
        nx, ny, nz = (n[run] for n in self.n)
        m = camera.clip_rows().astype(np.float32)
        facing = nx * eye[0] + ny * eye[1] + nz * eye[2]  # orthographic: n · axis = cos
        if not camera.orthographic:
            facing -= self.n_dot_p[run]  # n · (camera − p)
        cw = px * m[2, 0] + py * m[2, 1] + pz * m[2, 2] + m[2, 3]
        d = px * m[3, 0] + py * m[3, 1] + pz * m[3, 2] + m[3, 3]
        inv_w = 1.0 / cw
        x = ((px * m[0, 0] + py * m[0, 1] + pz * m[0, 2] + m[0, 3]) * inv_w + 1) * (w * 0.5) - 0.5
        y = (1 - (px * m[1, 0] + py * m[1, 1] + pz * m[1, 2] + m[1, 3]) * inv_w) * (h * 0.5) - 0.5
        ok = (facing > 0) & (cw > 0) & (d > 0)
        ok &= (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
        sel = np.flatnonzero(ok)
        if not sel.size:
            return
        x, y, d, facing = x[sel], y[sel], d[sel], facing[sel]
        x0, y0 = np.floor(x), np.floor(y)
        idx = y0.astype(np.int64) * w + x0.astype(np.int64)
        edge = g.quad[idx]
        keep = np.flatnonzero(edge > 0)
        sel, idx, edge = sel[keep], idx[keep], edge[keep]
        x, y, d, facing, x0, y0 = (a[keep] for a in (x, y, d, facing, x0, y0))
        fx, fy = x - x0, y - y0
        d_pass = _bilinear(g.depth, w, idx, fx, fy)
        keep = np.flatnonzero(np.abs(d - d_pass) <= DEPTH_REL * d_pass + DEPTH_ABS)
        sel, idx, edge, facing, fx, fy = (a[keep] for a in (sel, idx, edge, facing, fx, fy))
        if camera.orthographic:
            cos = facing
        else:
            gx, gy, gz = (eye[k] - self.p[k][run][sel] for k in range(3))
            cos = facing / np.sqrt(gx * gx + gy * gy + gz * gz)
        weight = cos**COS_POWER * edge
        if g.share is not None:
            weight *= _bilinear(g.share, w, idx, fx, fy)
        keep = np.flatnonzero(weight > 0)
        if not keep.size:
            return
        sel, idx, fx, fy, weight = (a[keep] for a in (sel, idx, fx, fy, weight))
        texel = self.texel[run][sel]
        stats.new += int(np.count_nonzero(self.weight[texel] == 0))
        stats.seen += int(texel.size)
        for k in range(3):
            self.color_sum[k, texel] += _bilinear(g.colour[k], w, idx, fx, fy) * weight
        self.weight[texel] += weight

    # ------------------------------------------------------------------ results

    def texture(self) -> np.ndarray:
        """uint8 H×W×4: the weighted mean colour, alpha 255 where covered (else all 0)."""
        return self._rgba(self.color_sum, self.weight).reshape(self.height, self.width, 4)

    def preview(self, side: int = 256) -> np.ndarray:
        """The texture so far, RGB, at most ``side`` on its long edge (every n-th texel)."""
        step = max(1, -(-max(self.height, self.width) // side))
        grid = self.color_sum.reshape(3, self.height, self.width)[:, ::step, ::step]
        grid_w = self.weight.reshape(self.height, self.width)[::step, ::step]
        rgba = self._rgba(grid.reshape(3, -1), grid_w.reshape(-1))
        return np.ascontiguousarray(rgba[:, :3].reshape(grid_w.shape[0], grid_w.shape[1], 3))

    @staticmethod
    def _rgba(color_sum: np.ndarray, weight: np.ndarray) -> np.ndarray:
        out = np.zeros((weight.size, 4), np.uint8)
        covered = np.flatnonzero(weight > 0)
        for k in range(3):
            mean = color_sum[k, covered] / weight[covered]
            out[covered, k] = np.rint(np.clip(mean, 0, 255)).astype(np.uint8)
        out[covered, 3] = 255
        return out


@dataclass(frozen=True)
class ViewGeometry:
    """What the bake reads of one view (the passes the ControlNets read are the caller's)."""

    camera: Camera
    depth: np.ndarray  # float32 H×W×1
    uv: np.ndarray  # float32 H×W×2
    mask: np.ndarray  # uint8 H×W×1


# paint(view index, init or None for the first view, inpaint mask or None) → uint8 H×W×3
PaintFn = Callable[[int, "np.ndarray | None", "np.ndarray | None"], np.ndarray]
AfterFn = Callable[[int, ViewStats], None]


def bake_views(
    bake: Bake, views: Sequence[ViewGeometry], paint: PaintFn, after: AfterFn | None = None
) -> list[np.ndarray]:
    """Paint the views in order into ``bake`` (docs/protocol.md 4.2.4, steps 1–5); returns
    each view as painted. The first view is painted whole; each later one gets the texture
    so far as its init and its not-yet-covered target pixels as its mask, keeps its init
    elsewhere, and adds weight only where it painted."""
    out = []
    for n, view in enumerate(views):
        if n == 0:
            image = np.asarray(paint(0, None, None), np.uint8)
            stats = bake.add_view(view.camera, view.depth, view.mask, image)
        else:
            init, _, regenerate = bake.init_and_mask(view.uv, view.mask)
            painted = np.asarray(paint(n, init, regenerate), np.uint8)
            image = np.where(regenerate[..., None] >= 128, painted, init)
            stats = bake.add_view(view.camera, view.depth, view.mask, image, regenerate)
        out.append(image)
        if after is not None:
            after(n, stats)
    return out
