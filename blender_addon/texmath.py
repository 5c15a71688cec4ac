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


def area_samples(
    triangles: np.ndarray, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points on the surface (T×3×3 world-space triangles), area-weighted: each
    stands for the same surface area, so the share of points seen is the share of area
    seen. The same points whatever order the triangles and their corners come in (Blender
    hands a UV sphere's loop triangles over in another order in each process). Returns the
    points, their unit face normals (N×3 each) and the triangle each lies on (N)."""
    order, triangles = _canonical(triangles)
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
    return points, normals, order[chosen]


def _canonical(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The triangles in an order of their own (by corner positions, rounded to a millionth
    of their extent so that float noise does not reorder them), each starting at its
    smallest corner (the winding kept). Returns the order and the reordered triangles."""
    scale = 1e6 / max(1e-12, float(np.abs(triangles).max()))
    q = np.round(triangles * scale)
    corners = np.lexsort((q[..., 2].ravel(), q[..., 1].ravel(), q[..., 0].ravel()))
    rank = np.empty(corners.size, dtype=np.int64)
    rank[corners] = np.arange(corners.size)
    first = rank.reshape(-1, 3).argmin(axis=1)
    roll = (np.arange(3)[None, :] + first[:, None]) % 3
    rows = np.arange(len(triangles))[:, None]
    q, turned = q[rows, roll], triangles[rows, roll]
    order = np.lexsort(q.reshape(len(q), 9).T[::-1])
    return order, turned[order]


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


# The server's rules for what a view paints (docs/protocol.md 4.2.4, step 3): greedy counts
# a surface point as seen from a camera only where the server would give it weight.
DEPTH_REL, DEPTH_ABS = 0.01, 1e-4  # |d − d_pass| ≤ DEPTH_REL · d_pass + DEPTH_ABS


def rasterise(
    triangles: np.ndarray, owner: np.ndarray, world_to_camera: np.ndarray, focal: float, side: int
) -> tuple[np.ndarray, np.ndarray]:
    """What a square perspective camera (``focal`` = 1 / tan(fov / 2)) sees at each pixel
    centre of a side×side frame, as Cycles' depth and object index passes give it: the
    view-space depth of the nearest triangle (0 = none) and that triangle's ``owner`` (−1 =
    none), row 0 at the top. All triangles at once: each one's rows, each row's span of
    pixel centres inside its three edges, the depth (1/depth is linear across the screen)
    and a z-buffer by minimum. A triangle reaching behind the camera is left out."""
    cam = triangles.reshape(-1, 3) @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    cam = cam.reshape(-1, 3, 3)
    z = -cam[..., 2]
    front = (z > 1e-6).all(axis=1)
    cam, z, owner = cam[front], z[front], np.asarray(owner)[front]
    sx = (focal * cam[..., 0] / z + 1.0) * (side * 0.5) - 0.5  # pixel centres at integers
    sy = (1.0 - focal * cam[..., 1] / z) * (side * 0.5) - 0.5
    # corner k's barycentric weight at (x, y) is a_k x + b_k y + c_k (edge functions / area)
    nxt, prv = [1, 2, 0], [2, 0, 1]
    qx, qy, rx, ry = sx[:, nxt], sy[:, nxt], sx[:, prv], sy[:, prv]
    area = (sx[:, 1] - sx[:, 0]) * (sy[:, 2] - sy[:, 0]) - (sy[:, 1] - sy[:, 0]) * (
        sx[:, 2] - sx[:, 0]
    )
    flat = area == 0
    area = np.where(flat, 1.0, area)[:, None]
    a, b, c = (qy - ry) / area, (rx - qx) / area, (qx * ry - qy * rx) / area
    y0 = np.clip(np.ceil(sy.min(axis=1)), 0, side).astype(np.int64)
    y1 = np.clip(np.floor(sy.max(axis=1)), -1, side - 1).astype(np.int64)
    rows = np.where(flat, 0, np.maximum(y1 - y0 + 1, 0))
    tri, row = _runs(rows, y0)
    slope, rest = a[tri], b[tri] * row[:, None] + c[tri]  # weight_k = slope_k x + rest_k
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = (-1e-9 - rest) / slope  # weight_k ≥ −1e-9: centres on an edge count
    low = np.maximum(0.0, np.where(slope > 0, bound, -np.inf).max(axis=1))
    high = np.minimum(side - 1.0, np.where(slope < 0, bound, np.inf).min(axis=1))
    outside = ((slope == 0) & (rest < -1e-9)).any(axis=1)
    start = np.ceil(low)
    width = np.where(outside, 0, np.maximum(np.floor(high) - start + 1, 0)).astype(np.int64)
    span, px = _runs(width, start)
    t, py = tri[span], row[span]
    inv = 1.0 / z
    d = 1.0 / ((a * inv).sum(1)[t] * px + (b * inv).sum(1)[t] * py + (c * inv).sum(1)[t])
    pixel = (py * side + px).astype(np.int64)
    nearest = np.full(side * side, np.inf)
    np.minimum.at(nearest, pixel, d)
    found = np.full(side * side, -1, dtype=np.int64)
    hit = d <= nearest[pixel]
    found[pixel[hit]] = owner[t[hit]]
    depth = np.where(np.isfinite(nearest), nearest, 0.0)
    return depth.reshape(side, side), found.reshape(side, side)


def _runs(counts: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For items with ``counts`` consecutive values from ``first`` each: which item each
    value belongs to, and the value (first, first + 1, …) as float."""
    item = np.repeat(np.arange(len(counts)), counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return item, (first[item] + step).astype(np.float64)


def painted_from(
    points: np.ndarray,
    normals: np.ndarray,
    world_to_camera: np.ndarray,
    focal: float,
    depth: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    """Which surface points (N×3, unit normals N×3) the server gives weight to from this
    view (``depth`` and the target's ``mask`` as ``rasterise`` makes them): facing the
    camera, the 2×2 bilinear footprint on the frame and on mask pixels not next to its edge
    (or the frame's), and the point's depth matching the depth pass sampled there."""
    side = depth.shape[0]
    rotation, shift = world_to_camera[:3, :3], world_to_camera[:3, 3]
    eye = -rotation.T @ shift
    cam = points @ rotation.T + shift
    d = -cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (focal * cam[:, 0] / d + 1.0) * (side * 0.5) - 0.5
        y = (1.0 - focal * cam[:, 1] / d) * (side * 0.5) - 0.5
    facing = np.einsum("ij,ij->i", normals, eye - points) > 0.0
    ok = facing & (d > 0) & (x >= 0) & (x < side - 1) & (y >= 0) & (y < side - 1)
    inner = interior(mask).reshape(-1)
    flat = depth.reshape(-1)
    sel = np.flatnonzero(ok)
    x0, y0 = np.floor(x[sel]), np.floor(y[sel])
    fx, fy = x[sel] - x0, y[sel] - y0
    idx = y0.astype(np.int64) * side + x0.astype(np.int64)
    corners = (idx, idx + 1, idx + side, idx + side + 1)
    on = inner[corners[0]] & inner[corners[1]] & inner[corners[2]] & inner[corners[3]]
    top = flat[corners[0]] * (1 - fx) + flat[corners[1]] * fx
    bottom = flat[corners[2]] * (1 - fx) + flat[corners[3]] * fx
    d_pass = top * (1 - fy) + bottom * fy
    on &= np.abs(d[sel] - d_pass) <= DEPTH_REL * d_pass + DEPTH_ABS
    seen = np.zeros(len(points), dtype=bool)
    seen[sel[on]] = True
    return seen


def interior(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels whose eight neighbours are all on the mask and on the frame: where
    the server's edge feather is above zero (distance to the edge at least 2 pixels)."""
    out = np.zeros(mask.shape, dtype=bool)
    out[1:-1, 1:-1] = mask[1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                out[1:-1, 1:-1] &= mask[
                    1 + dy : mask.shape[0] - 1 + dy, 1 + dx : mask.shape[1] - 1 + dx
                ]
    return out


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
