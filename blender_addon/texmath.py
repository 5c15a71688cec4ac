"""Whole-object texturing in numpy only: where texture cameras stand, which views see most of
the surface, whether a UV map overlaps itself, how uncovered texels are filled, and where a
view's pixels lie in the world.

No bpy here (like ``geometry``): ``texcams`` and ``texbake`` hand it plain arrays, so the
arithmetic can be read and tested without Blender's types in the way.
"""

from __future__ import annotations

import math

import numpy as np

GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


# ---------------------------------------------------------------------------- camera placement


def fibonacci_directions(count: int, hemisphere: bool = False) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere (or the upper half, z ≥ 0): the
    Fibonacci lattice, equal area per point without clumping at the poles. Each vector points
    from the objects' centre to a camera."""
    if count < 1:
        raise ValueError(f"the number of cameras must be at least 1, got {count}")
    i = np.arange(count, dtype=np.float64) + 0.5
    z = 1.0 - i / count if hemisphere else 1.0 - 2.0 * i / count
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, 1.0))
    angle = GOLDEN_ANGLE * i
    return np.column_stack([r * np.cos(angle), r * np.sin(angle), z])


def orbit_directions(count: int, elevation_deg: float) -> np.ndarray:
    """``count`` unit vectors on a ring at ``elevation_deg`` above the horizon, the first in
    front of the objects (−y, where Blender's front view looks from), going round
    counter-clockwise seen from above."""
    if count < 1:
        raise ValueError(f"the number of cameras must be at least 1, got {count}")
    elevation = math.radians(elevation_deg)
    angle = -math.pi / 2 + 2.0 * math.pi * np.arange(count) / count
    ring = math.cos(elevation)
    return np.column_stack(
        [ring * np.cos(angle), ring * np.sin(angle), np.full(count, math.sin(elevation))]
    )


def framing_distance(radius: float, fov: float, margin: float = 1.05) -> float:
    """How far from the centre a camera with field of view ``fov`` (radians, the narrower
    one) must stand for a sphere of ``radius`` to fill its frame without being cut."""
    if radius <= 0.0:
        raise ValueError("the objects to frame have no extent (their bounds are one point)")
    return float(radius * margin / math.sin(fov / 2.0))


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """The centre of the points' bounding box and the radius that encloses every point."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2.0
    return centre, float(np.linalg.norm(points - centre, axis=1).max())


# ---------------------------------------------------------------------------- greedy coverage


def area_samples(triangles: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points on the surface (T×3×3 world-space triangles), area-weighted: each
    stands for the same surface area, so the share of points seen is the share of area
    seen. Returns the points and their unit face normals (N×3 each)."""
    edge1, edge2 = triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    cross = np.cross(edge1, edge2)
    doubled = np.linalg.norm(cross, axis=1)
    if not (doubled > 0).any():
        raise ValueError("the mesh has no faces with area to texture")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(triangles), size=count, p=doubled / doubled.sum())
    a, b = rng.random(count), rng.random(count)
    flip = a + b > 1.0
    a, b = np.where(flip, 1.0 - a, a), np.where(flip, 1.0 - b, b)
    points = triangles[chosen, 0] + a[:, None] * edge1[chosen] + b[:, None] * edge2[chosen]
    normals = cross[chosen] / doubled[chosen, None]
    return points, normals


def greedy_views(seen: np.ndarray, target: float, budget: int) -> tuple[list[int], list[float]]:
    """Pick views from candidates (``seen``: C×N bool, candidate c sees sample n) one at a
    time, each the one that sees the most samples no view picked so far sees, until the
    picked views see ``target`` (0…1) of the samples any candidate sees, ``budget`` views
    are picked, or no candidate adds anything. Surface that no candidate sees (inside the
    mesh: the backs of Suzanne's eyes) cannot be painted and does not hold the loop up.
    Returns the picked candidates in order and the share of all samples seen after each."""
    covered = np.zeros(seen.shape[1], dtype=bool)
    reachable = max(1, int(seen.any(axis=0).sum()))
    picked: list[int] = []
    coverage: list[float] = []
    total = max(1, seen.shape[1])
    while len(picked) < budget and covered.sum() / reachable < target:
        gain = (seen & ~covered).sum(axis=1)
        best = int(np.argmax(gain))
        if gain[best] == 0:
            break
        picked.append(best)
        covered |= seen[best]
        coverage.append(float(covered.sum() / total))
    return picked, coverage


# ---------------------------------------------------------------------------- UV maps


def uv_hits(triangles: np.ndarray, size: int) -> np.ndarray:
    """How many UV triangles (K×3×2, 0…1, v up) cover each texel centre of a size×size
    texture (row 0 at the top, v = 1): 0 outside the islands, 1 inside, 2 or more where the
    map overlaps itself. Centres on an edge shared by two triangles count once (half-open
    edge rule: a centre exactly on an edge belongs to the triangle on its left/top side)."""
    hits = np.zeros((size, size), dtype=np.int32)
    px = np.empty_like(triangles, dtype=np.float64)
    px[..., 0] = triangles[..., 0] * size
    px[..., 1] = (1.0 - triangles[..., 1]) * size
    for tri in px:
        a, b, c = tri
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if area == 0.0:
            continue
        if area < 0.0:  # one winding, so that the top-left rule picks the same side
            b, c = c, b
        x0, x1 = max(0, math.floor(tri[:, 0].min())), min(size, math.ceil(tri[:, 0].max()) + 1)
        y0, y1 = max(0, math.floor(tri[:, 1].min())), min(size, math.ceil(tri[:, 1].max()) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        inside = np.ones(xs.shape, dtype=bool)
        for p, q in ((a, b), (b, c), (c, a)):
            e = (q[0] - p[0]) * (ys - p[1]) - (q[1] - p[1]) * (xs - p[0])
            top_left = (q[1] < p[1]) or (q[1] == p[1] and q[0] > p[0])
            inside &= (e > 0) | ((e == 0) & top_left)
        hits[y0:y1, x0:x1] += inside
    return hits


def overlap_share(hits: np.ndarray) -> float:
    """The share of the islands' texels that two or more triangles cover."""
    inside = hits > 0
    return float((hits > 1).sum() / max(1, inside.sum()))


# ---------------------------------------------------------------------------- filling


def dilate_fill(
    rgba: np.ndarray, covered: np.ndarray, wanted: np.ndarray, margin: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Fill the texels of ``wanted`` (H×W bool: the UV islands) that no view ``covered`` with
    the mean of their filled 8-neighbours, ring by ring inward from what is covered, and
    ``margin`` texels beyond the islands (so that filtering at a seam finds colour). An
    island no view saw at all gets the mean covered colour. Returns the RGB(A) image, alpha
    255 on every filled and covered texel, and the mask of texels filled here."""
    out = rgba.astype(np.float32).copy()
    known = covered.copy()
    reach = wanted.copy()
    for _ in range(margin):
        reach = _grow(reach)
    todo = reach & ~known
    colour = out[..., :3]
    for _ in range(sum(out.shape[:2])):
        if not todo.any():
            break
        total = np.zeros_like(colour)
        count = np.zeros(known.shape, dtype=np.float32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    total += _shift(colour * known[..., None], dy, dx)
                    count += _shift(known.astype(np.float32), dy, dx)
        ring = todo & (count > 0)
        if not ring.any():
            break
        colour[ring] = total[ring] / count[ring, None]
        known |= ring
        todo &= ~ring
    if todo.any():  # nothing covered anywhere near: the mean colour, so nothing stays black
        colour[todo] = colour[covered].mean(axis=0) if covered.any() else 0.5 * 255.0
        known |= todo
    filled = known & ~covered
    if out.shape[-1] == 4:
        out[..., 3] = np.where(known, 255.0, out[..., 3])
    return np.clip(np.round(out), 0, 255).astype(np.uint8), filled & wanted


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved by (dy, dx) with zeros coming in (no wrap)."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = a[
        max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)
    ]
    return out


def _grow(mask: np.ndarray) -> np.ndarray:
    grown = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= _shift(mask, dy, dx)
    return grown


def coverage_picture(covered: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """An RGB picture of a texture's coverage: covered texels green, filled ones orange,
    the rest dark grey."""
    out = np.full((*covered.shape, 3), 40, dtype=np.uint8)
    out[covered] = (60, 190, 90)
    out[filled] = (240, 140, 30)
    return out


# ---------------------------------------------------------------------------- views


def unproject(depth: np.ndarray, world_to_camera: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """The world position each pixel sees (H×W×3) from its view-space depth (H×W, distance
    along the camera's −z) and the camera's matrices: the pixel centre's ray through the
    inverse projection, scaled to that depth. Row 0 is the top of the frame."""
    height, width = depth.shape
    x = (np.arange(width) + 0.5) / width * 2.0 - 1.0
    y = 1.0 - (np.arange(height) + 0.5) / height * 2.0
    ndc = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((height, width))), -1)
    clip = np.concatenate([ndc, np.ones((height, width, 1))], axis=-1)
    view = clip @ np.linalg.inv(projection).T
    view = view[..., :3] / view[..., 3:4]
    view *= (depth / -view[..., 2])[..., None]  # points on the ray at view z = −depth
    camera_to_world = np.linalg.inv(world_to_camera)
    return view @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]


def sample_texels(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup of a T×T×C texture (row 0 = v = 1) at UVs (…×2)."""
    size_v, size_u = texture.shape[:2]
    col = np.clip((uv[..., 0] * size_u).astype(np.int64), 0, size_u - 1)
    row = np.clip(((1.0 - uv[..., 1]) * size_v).astype(np.int64), 0, size_v - 1)
    return texture[row, col]
