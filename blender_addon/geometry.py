"""The add-on's arithmetic in numpy only: camera projection, normal frames, UV-polygon masks.

No bpy here, so that the maths can be read (and checked) without Blender's types in the way;
``passes`` and ``scene`` hand it plain arrays and matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_SIDE = 64  # the protocol's smallest image side; sides are multiples of 8
STEP = 8  # one latent pixel: image sides are multiples of it


def frame_size(
    aspect_x: float, aspect_y: float, long_side: int, max_side: int = 4096
) -> tuple[int, int]:
    """Width and height for a frame of aspect ``aspect_x:aspect_y`` (display shape: pixel
    aspect already applied) with the longer side near ``long_side``: both multiples of 8, at
    least 64 and at most ``max_side`` (what the server accepts). The aspect is what matters
    (the image is stretched over the camera frame), so the long side follows the short one:
    the width is within half a latent step (4 px) of ``height × aspect`` and the other way
    round. A frame too narrow for that within 64 … ``max_side`` raises ValueError with the fix.
    """
    if not (aspect_x > 0 and aspect_y > 0):
        raise ValueError(f"the frame's aspect {aspect_x}:{aspect_y} must be positive")
    wide = aspect_x >= aspect_y
    ratio = aspect_x / aspect_y if wide else aspect_y / aspect_x  # long / short, ≥ 1
    top = int(max_side) // STEP * STEP
    wanted = min(top, max(MIN_SIDE, int(long_side) // STEP * STEP))
    short = max(MIN_SIDE, round(wanted / ratio / STEP) * STEP)
    long = round(short * ratio / STEP) * STEP
    while long > top and short > MIN_SIDE:  # the short side's minimum made the long one grow
        short -= STEP
        long = round(short * ratio / STEP) * STEP
    if long > top:
        widest = top / MIN_SIDE
        raise ValueError(
            f"the camera frame is {ratio:.1f}:1, wider than images of {MIN_SIDE} … {top} px a "
            f"side can keep ({widest:.0f}:1 at most); change the render resolution's aspect"
        )
    return (long, short) if wide else (short, long)


def render_aspect(
    resolution_x: int, resolution_y: int, percentage: int, pixel_x: float, pixel_y: float
) -> float:
    """Width ÷ height of the camera frame as it is displayed: Blender renders
    ``resolution × percentage ÷ 100`` pixels (integer division) of ``pixel_x:pixel_y`` shape."""
    width = max(1, resolution_x * percentage // 100) * pixel_x
    height = max(1, resolution_y * percentage // 100) * pixel_y
    return width / height


def project(points: np.ndarray, world_to_camera: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """World-space points (N×3) → their position in the camera frame (N×2, 0…1, origin at the
    bottom left: Blender's UV convention), through the camera's projection matrix."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    clip = homogeneous @ (projection @ world_to_camera).T
    w = clip[:, 3:4]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)  # a point on the camera plane: far off the frame
    return clip[:, :2] / w * 0.5 + 0.5


def projection_rows(
    world_to_camera: np.ndarray, projection: np.ndarray, object_to_world: np.ndarray
) -> np.ndarray:
    """The camera projection of an object's local points as three rows (3×4: U, V, W) such
    that ``u = (U·p + U₃) / (W·p + W₃)`` and likewise v: the same numbers as ``project`` of
    the points moved to world space, folded into one matrix so that a geometry-nodes modifier
    can evaluate it with a few dot products on whatever positions the modifier stack made.
    Clip x, y run −1…1 and UVs 0…1, so U = (X + W) / 2 and V = (Y + W) / 2."""
    m = projection @ world_to_camera @ object_to_world
    return np.stack([(m[0] + m[3]) * 0.5, (m[1] + m[3]) * 0.5, m[3]])


def apply_rows(rows: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Local points (N×3) → UVs (N×2) through ``projection_rows``: what the modifier computes."""
    h = points @ rows[:, :3].T + rows[:, 3]
    w = np.where(np.abs(h[:, 2:3]) < 1e-12, 1e-12, h[:, 2:3])
    return h[:, :2] / w


def planes_to_camera(planes: Sequence[np.ndarray], camera_rotation: np.ndarray) -> np.ndarray:
    """World-space normals, given as the EXR's separate X, Y, Z planes (H×W each) → camera
    space H×W×3: x right, y up, z toward the camera (Blender's camera looks down its local −z).
    The inverse of a rotation is its transpose, so camera axis k = Σᵢ worldᵢ · R[i, k]: nine
    multiply-adds over planes, ~5× faster at 1024² than stacking and a batched matmul."""
    x, y, z = planes
    out = np.empty((*x.shape, 3), dtype=np.float32)
    for axis in range(3):
        r = camera_rotation[:, axis]
        np.multiply(x, r[0], out=out[..., axis])
        out[..., axis] += y * r[1]
        out[..., axis] += z * r[2]
    return out


def rasterize(polygons: Sequence[np.ndarray], width: int, height: int, grow: int = 0) -> np.ndarray:
    """A uint8 mask (height×width, row 0 at the top, 255 inside) of UV polygons (each k×2,
    k ≥ 3, UV space 0…1 with v up). A pixel is inside when its centre is; ``grow`` widens
    the mask by that many pixels, so that filtering at the region's edge finds new pixels."""
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        px = np.column_stack([polygon[:, 0] * width, (1.0 - polygon[:, 1]) * height])
        for i in range(1, len(px) - 1):  # a fan: faces in Blender are convex enough for this
            _fill_triangle(mask, px[0], px[i], px[i + 1])
    for _ in range(max(0, grow)):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return (mask * np.uint8(255)).astype(np.uint8)


def _fill_triangle(mask: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
    height, width = mask.shape
    x0, x1 = (
        max(0, int(np.floor(min(a[0], b[0], c[0])))),
        min(width, int(np.ceil(max(a[0], b[0], c[0]))) + 1),
    )
    y0, y1 = max(0, int(np.floor(min(a[1], b[1], c[1])))), min(height, int(np.ceil(max(a[1], b[1], c[1]))) + 1)  # fmt: skip
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5  # pixel centres

    def edge(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])

    e0, e1, e2 = edge(a, b), edge(b, c), edge(c, a)
    eps = 1e-9  # centres exactly on a shared edge belong to both triangles
    inside = ((e0 >= -eps) & (e1 >= -eps) & (e2 >= -eps)) | (
        (e0 <= eps) & (e1 <= eps) & (e2 <= eps)
    )
    mask[y0:y1, x0:x1] |= inside
