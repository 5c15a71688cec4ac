"""The geometry of the multiview task: cameras, pixels and feathers (docs/protocol.md 4.2.4).

docs/protocol.md 4.2.4 is the normative description; this module and ``multiview_bake.py``
(the texture being painted, and the loop over the views) are it in numpy. Pixel centres
follow Blender: pixel (x, y), row 0 at the top, is NDC ((2x+1)/W − 1, 1 − (2y+1)/H).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COS_POWER = 2  # weight = max(0, cos θ)^COS_POWER × feather
DEPTH_REL = 0.01  # visible when |d − d_pass| ≤ DEPTH_REL · d_pass + DEPTH_ABS (scene units)
DEPTH_ABS = 1e-4
WELL_COVERED = 0.5  # a view pixel whose sampled weight reaches this is not painted again
GREY = 128  # init colour where nothing is painted yet
FEATHER_DIVISOR = 64  # feather width F = max(2, max(W, H) / FEATHER_DIVISOR) pixels


def feather_width(width: int, height: int) -> float:
    return max(2.0, max(width, height) / FEATHER_DIVISOR)


@dataclass(frozen=True)
class Camera:
    """One view's camera: 4×4 row-major world → camera and camera → clip (OpenGL)."""

    world_to_camera: np.ndarray  # float64 4×4
    projection: np.ndarray  # float64 4×4
    width: int
    height: int

    @classmethod
    def from_wire(
        cls,
        world_to_camera: tuple[float, ...],
        projection: tuple[float, ...],
        size: tuple[int, int],
    ) -> Camera:
        w2c = np.asarray(world_to_camera, np.float64).reshape(4, 4)
        proj = np.asarray(projection, np.float64).reshape(4, 4)
        return cls(w2c, proj, size[0], size[1])

    @property
    def position(self) -> np.ndarray:
        """The camera's world position (the translation of camera → world)."""
        return np.asarray(np.linalg.inv(self.world_to_camera)[:3, 3])

    @property
    def orthographic(self) -> bool:
        return bool(np.allclose(self.projection[3], (0.0, 0.0, 0.0, 1.0)))

    def eye(self) -> np.ndarray:
        """The camera's world position, or for an orthographic camera its unit view axis
        (+Z of the camera in world space: toward the camera)."""
        c2w = np.linalg.inv(self.world_to_camera)
        if self.orthographic:
            axis = c2w[:3, 2]
            return np.asarray(axis / np.linalg.norm(axis))
        return np.asarray(c2w[:3, 3])

    def toward(self, points: np.ndarray) -> np.ndarray:
        """Directions (N×3 float32, not unit) from world points to the camera: to its
        position, or for an orthographic camera along its view axis (+Z in world)."""
        c2w = np.linalg.inv(self.world_to_camera)
        if self.orthographic:
            return np.broadcast_to(c2w[:3, 2].astype(np.float32), points.shape)
        return c2w[:3, 3].astype(np.float32) - points

    def clip_rows(self) -> np.ndarray:
        """4×4 float64 world → (clip x, clip y, clip w, view-space depth) rows."""
        clip = self.projection @ self.world_to_camera
        return np.stack([clip[0], clip[1], clip[3], -self.world_to_camera[2]])

    def frustum_planes(self) -> np.ndarray:
        """5×4 world-space planes (left, right, bottom, top, near), inside ≥ 0 (Gribb–Hartmann)."""
        m = self.projection @ self.world_to_camera
        return np.stack([m[3] + m[0], m[3] - m[0], m[3] + m[1], m[3] - m[1], m[3] + m[2]])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points (N×3) → continuous pixel x, y (pixel centres at integers) and
        view-space depth (along −Z; ≤ 0 behind the camera), float64."""
        p = np.asarray(points, np.float64)
        r = self.clip_rows()
        cx, cy, cw, depth = (p[:, 0] * m[0] + p[:, 1] * m[1] + p[:, 2] * m[2] + m[3] for m in r)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (cx / cw + 1.0) * (self.width * 0.5) - 0.5
            y = (1.0 - cy / cw) * (self.height * 0.5) - 0.5
        return x, y, np.where(cw > 0, depth, -1.0)

    def unproject(self, depth: np.ndarray) -> np.ndarray:
        """The world position each pixel sees (H×W×3, float64) from its view-space depth
        (H×W or H×W×1): where the pixel centre's ray reaches that depth. The ray is the line
        through its points at NDC z = −1 and z = 1, so perspective and orthographic cameras
        are the same code."""
        h, w = self.height, self.width
        d = np.asarray(depth, np.float64).reshape(h, w)
        xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
        ys = 1.0 - (2.0 * np.arange(h) + 1.0) / h
        ndc = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), axis=-1)  # H×W×2
        inv = np.linalg.inv(self.projection)
        on_ray = ndc[..., 0:1] * inv[:, 0] + ndc[..., 1:2] * inv[:, 1] + inv[:, 3]
        near = on_ray - inv[:, 2]  # NDC z = −1, homogeneous camera space
        far = on_ray + inv[:, 2]  # NDC z = +1
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = near[..., :3] / near[..., 3:4], far[..., :3] / far[..., 3:4]
            t = (-d - a[..., 2]) / (b[..., 2] - a[..., 2])  # view-space depth d = −z
            cam = a + (b - a) * t[..., None]
        c2w = np.linalg.inv(self.world_to_camera)
        return np.asarray(cam @ c2w[:3, :3].T + c2w[:3, 3])


def edge_distance(mask: np.ndarray, most: int) -> np.ndarray:
    """Chessboard distance (pixels, capped at ``most``) from each pixel to the nearest pixel
    that is off the image or has ``mask`` < 128; 0 on such pixels. Separable erosions."""
    alive = np.asarray(mask).reshape(mask.shape[0], mask.shape[1]) >= 128
    distance = alive.astype(np.uint8)
    for _ in range(most - 1):
        rows = alive.copy()
        rows[:, 1:] &= alive[:, :-1]
        rows[:, :-1] &= alive[:, 1:]
        rows[:, 0] = rows[:, -1] = False
        eroded = rows.copy()
        eroded[1:] &= rows[:-1]
        eroded[:-1] &= rows[1:]
        eroded[0] = eroded[-1] = False
        if not eroded.any():
            break
        distance += eroded
        alive = eroded
    return distance


def feather(mask: np.ndarray) -> np.ndarray:
    """Per pixel min(1, (e − 1) / F) (docs/protocol.md 4.2.4), float32 H×W."""
    h, w = mask.shape[0], mask.shape[1]
    f = feather_width(w, h)
    e = edge_distance(mask, int(np.ceil(f)) + 1).astype(np.float32)
    return np.clip((e - 1.0) / f, 0.0, 1.0)


def quad_min(field: np.ndarray) -> np.ndarray:
    """(H−1)×(W−1): the minimum of each 2×2 block, flattened; a bilinear footprint with top-left
    pixel (x0, y0) reads index y0·(W−1) + x0."""
    m = np.minimum(
        np.minimum(field[:-1, :-1], field[:-1, 1:]), np.minimum(field[1:, :-1], field[1:, 1:])
    )
    return m.reshape(-1)


def bilinear(
    grid: np.ndarray, width: int, idx: np.ndarray, fx: np.ndarray, fy: np.ndarray
) -> np.ndarray:
    """Bilinear read of a flattened grid (rows of ``width``; (H·W,) or (H·W, C)) at footprints
    whose top-left is ``idx`` with fractions ``fx``, ``fy`` (float32)."""
    if grid.ndim == 2:
        fx, fy = fx[:, None], fy[:, None]
    top = grid[idx] * (1 - fx) + grid[idx + 1] * fx
    bottom = grid[idx + width] * (1 - fx) + grid[idx + width + 1] * fx
    out: np.ndarray = top * (1 - fy) + bottom * fy
    return out


def position_colours(
    camera: Camera, depth: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The diagnostic paint: uint8 H×W×3, each pixel the colour of the world position it sees
    (unprojected from ``depth``), 255 × (p − lo) / (hi − lo); black where depth ≤ 0."""
    world = camera.unproject(depth)
    d = np.asarray(depth).reshape(camera.height, camera.width)
    with np.errstate(invalid="ignore"):
        surface = np.isfinite(d) & (d > 0)
    span = np.where(hi > lo, hi - lo, 1.0)
    colour = np.rint(np.clip((world - lo) / span, 0.0, 1.0) * 255.0)
    colour[~surface] = 0
    return np.nan_to_num(colour).astype(np.uint8)
