"""Analytic scenes for the multiview core: a UV-mapped sphere and an occluding box, ray-cast
in numpy into exactly the passes a host sends (docs/protocol.md 4.2.4).

The tests and ``benchmarks/multiview.py`` build their inputs here, so the geometry they check
against is computed independently of the code under test: rays are intersected in closed
form, the sphere's UV map is its longitude/latitude, and the cameras use Blender's
conventions (looking along −Z, +Y up, OpenGL projection). No model, no Blender.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .multiview import Camera


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, ...] = (0, 0, 1)) -> np.ndarray:
    """world → camera (4×4) of a camera at ``eye`` looking at ``target`` (−Z forward)."""
    eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
    back = eye - target
    back /= np.linalg.norm(back)
    up_v = np.asarray(up, np.float64)
    if abs(float(np.dot(up_v, back))) > 0.999:  # looking straight up or down
        up_v = np.array([0.0, 1.0, 0.0])
    right = np.cross(up_v, back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return np.asarray(np.linalg.inv(c2w))


def perspective(fov_y: float, aspect: float, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    """OpenGL camera → clip (what Blender's calc_matrix_camera gives for a perspective camera)."""
    f = 1.0 / np.tan(fov_y / 2)
    return np.array(
        [
            [f / aspect, 0, 0, 0],
            [0, f, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
            [0, 0, -1, 0],
        ]
    )


def orthographic(scale: float, aspect: float, near: float = 0.1, far: float = 100.0) -> np.ndarray:
    """OpenGL camera → clip of an orthographic camera ``scale`` units tall."""
    top = scale / 2
    right = top * aspect
    return np.array(
        [
            [1 / right, 0, 0, 0],
            [0, 1 / top, 0, 0],
            [0, 0, -2 / (far - near), -(far + near) / (far - near)],
            [0, 0, 0, 1],
        ]
    )


@dataclass(frozen=True)
class Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class ViewPasses:
    camera: Camera
    depth: np.ndarray  # float32 H×W×1
    normal: np.ndarray  # float32 H×W×3, camera space
    uv: np.ndarray  # float32 H×W×2
    mask: np.ndarray  # uint8 H×W×1
    hit: np.ndarray  # float64 H×W×3 world position seen (0 where nothing), for checks


def sphere_uv(points: np.ndarray) -> np.ndarray:
    """Longitude/latitude UV of unit-sphere points: u = ½ + atan2(y, x)/2π, v = ½ + asin(z)/π."""
    u = 0.5 + np.arctan2(points[..., 1], points[..., 0]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(points[..., 2], -1, 1)) / np.pi
    return np.stack([u, v], axis=-1)


def sphere_maps(side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unit sphere's UV-space (position, surface_normal, texels), row 0 = v = 1."""
    v = 1.0 - (np.arange(side) + 0.5) / side
    u = (np.arange(side) + 0.5) / side
    lon = (u[None, :] - 0.5) * 2 * np.pi
    lat = (v[:, None] - 0.5) * np.pi
    pos = np.stack(
        np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)),
        axis=-1,
    ).astype(np.float32)
    return pos, pos.copy(), np.full((side, side, 1), 255, np.uint8)


def render(
    eye: tuple[float, ...],
    size: tuple[int, int],
    *,
    target: tuple[float, ...] = (0.0, 0.0, 0.0),
    fov_y: float = np.radians(40),
    boxes: tuple[Box, ...] = (),
    radius: float = 1.0,
    boxes_are_target: bool = False,
    ortho_scale: float | None = None,
) -> ViewPasses:
    """Ray-cast a sphere of ``radius`` at the origin (the target) and ``boxes`` (occluders;
    with ``boxes_are_target`` they count as parts of the target in the mask, as a
    self-occluding mesh would, so that only the depth test can tell what they hide).
    ``ortho_scale``: an orthographic camera that many units tall instead of a perspective
    one of ``fov_y``."""
    width, height = size
    w2c = look_at(np.asarray(eye), np.asarray(target))
    aspect = width / height
    proj = perspective(fov_y, aspect) if ortho_scale is None else orthographic(ortho_scale, aspect)
    camera = Camera(w2c, proj, width, height)
    c2w = np.linalg.inv(w2c)
    xs = (2 * np.arange(width) + 1) / width - 1
    ys = 1 - (2 * np.arange(height) + 1) / height
    grid_x, grid_y = np.broadcast_arrays(xs[None, :], ys[:, None])
    if ortho_scale is None:
        # camera-space ray through each pixel centre, at view-space depth 1 (z = −1)
        dirs_cam = np.stack([grid_x / proj[0, 0], grid_y / proj[1, 1], -np.ones_like(grid_x)], -1)
        origin = np.broadcast_to(c2w[:3, 3], dirs_cam.shape)
    else:  # parallel rays from the camera plane
        dirs_cam = np.broadcast_to(np.array([0.0, 0.0, -1.0]), (*grid_x.shape, 3))
        plane = np.stack([grid_x / proj[0, 0], grid_y / proj[1, 1], np.zeros_like(grid_x)], -1)
        origin = plane @ c2w[:3, :3].T + c2w[:3, 3]
    dirs = dirs_cam @ c2w[:3, :3].T  # world; t along it = view-space depth
    # sphere |o + t d|² = r²
    a = np.einsum("ijk,ijk->ij", dirs, dirs)
    b = 2 * np.einsum("ijk,ijk->ij", dirs, origin)
    c = np.einsum("ijk,ijk->ij", origin, origin) - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t_sphere = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    t_sphere = np.where(t_sphere > 0, t_sphere, np.inf)
    t_box = np.full(t_sphere.shape, np.inf)
    n_box = np.zeros(dirs.shape)
    for box in boxes:
        t, n = _slab(origin, dirs, np.asarray(box.lo), np.asarray(box.hi))
        closer = t < t_box
        t_box = np.where(closer, t, t_box)
        n_box = np.where(closer[..., None], n, n_box)
    sphere_wins = t_sphere < t_box
    t = np.minimum(t_sphere, t_box)
    hit_any = np.isfinite(t)
    hit = np.where(hit_any[..., None], origin + dirs * np.where(hit_any, t, 0)[..., None], 0.0)
    normal_world = np.where(sphere_wins[..., None], hit / radius, n_box)
    normal_cam = np.where(hit_any[..., None], normal_world @ w2c[:3, :3].T, 0.0)
    depth = np.where(hit_any, t, 0.0)  # t is view-space depth: the ray's z step is −1
    uv = np.where(sphere_wins[..., None], sphere_uv(hit / radius), 0.0)
    mask = np.where(hit_any if boxes_are_target else sphere_wins, 255, 0).astype(np.uint8)
    return ViewPasses(
        camera,
        depth.astype(np.float32)[..., None],
        normal_cam.astype(np.float32),
        uv.astype(np.float32),
        mask[..., None],
        hit,
    )


def _slab(
    origin: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray/box entry distance (inf on a miss) and the entry face's outward normal."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - origin) / dirs
        t2 = (hi - origin) / dirs
    near = np.minimum(t1, t2)
    far = np.maximum(t1, t2)
    t_in = np.nanmax(near, axis=-1)
    t_out = np.nanmin(far, axis=-1)
    hit = (t_in <= t_out) & (t_in > 0)
    axis = np.nanargmax(near, axis=-1)
    normal = np.zeros(dirs.shape)
    sign = -np.sign(np.take_along_axis(dirs, axis[..., None], -1))[..., 0]
    np.put_along_axis(normal, axis[..., None], sign[..., None], -1)
    return np.where(hit, t_in, np.inf), normal
