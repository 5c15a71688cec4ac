"""Texture cameras: where the views of a whole-object texture are taken from.

Three placements: an orbit ring, an even spread over the sphere or the upper hemisphere, and
greedy coverage — from many candidate directions, repeatedly the one that sees the most
surface no camera picked so far sees. "Sees" is decided by ray casts (mathutils' BVHTree over
every rendered mesh, so other objects occlude) from area-weighted sample points on the
targets toward each candidate. Every camera looks at the centre of the targets' bounds from a
distance that fits their bounding sphere in its frame. Cameras live in one collection and the
order the server paints them in is the list ``Scene.sfumato.texturing.cameras``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from . import texbake, texmath

COLLECTION = "Sfumato Texture Cameras"
TAG = "sfumato_texture_camera"  # marks cameras made here
CANDIDATES = 64  # directions greedy coverage chooses from
SAMPLES = 1500  # surface points per target set for the coverage estimate
FACING = 0.5  # cos of the steepest angle a view counts as seeing a surface (60°)
MIN_SIDE = 64


@dataclass(frozen=True)
class Placement:
    """What ``place`` did: the cameras made, in order, and greedy's coverage estimate after
    each (empty for the fixed layouts)."""

    cameras: tuple[Any, ...]
    coverage: tuple[float, ...]  # share of the surface samples seen after each camera
    reachable: float = 1.0  # share that any candidate sees (the rest is inside the mesh)


def collection(scene: Any) -> Any:
    """The texture cameras' collection, made (and linked to the scene) on first use."""
    found = bpy.data.collections.get(COLLECTION)
    if found is None:
        found = bpy.data.collections.new(COLLECTION)
    if found.name not in scene.collection.children:
        scene.collection.children.link(found)
    return found


def bounds(objects: Sequence[Any]) -> tuple[np.ndarray, float]:
    """The centre and radius of a sphere around the objects' world-space bounding boxes."""
    corners = []
    for obj in objects:
        m = np.array(obj.matrix_world, dtype=np.float64)
        box = np.array([tuple(c) for c in obj.bound_box], dtype=np.float64)
        corners.append(box @ m[:3, :3].T + m[:3, 3])
    return texmath.bounding_sphere(np.concatenate(corners))


def place(
    context: Any,
    objects: Sequence[Any],
    strategy: str,
    *,
    count: int = 8,
    elevation: float = 20.0,
    target: float = 0.995,
    budget: int = 12,
    replace: bool = True,
    view_side: int = 512,
) -> Placement:
    """Make texture cameras for ``objects`` by ``strategy`` (ORBIT, SPHERE, HEMISPHERE,
    GREEDY) and put them, in order, into the list; ``replace`` deletes the cameras made
    earlier first (a camera the user made and added stays, only leaves the list).
    ``view_side``: the views' size in pixels (greedy counts what survives the server's edge
    rules at that size)."""
    scene, settings = context.scene, context.scene.sfumato.texturing
    centre, radius = bounds(objects)
    angle = bpy.data.cameras.new("probe")
    fov = float(angle.angle)
    bpy.data.cameras.remove(angle)
    distance = texmath.framing_distance(radius, fov)
    coverage: tuple[float, ...] = ()
    reachable = 1.0
    if strategy == "ORBIT":
        directions = texmath.orbit_directions(count, elevation)
    elif strategy in ("SPHERE", "HEMISPHERE"):
        directions = texmath.fibonacci_directions(count, hemisphere=strategy == "HEMISPHERE")
    elif strategy == "GREEDY":
        candidates = texmath.fibonacci_directions(CANDIDATES)
        pixel = 2.0 * math.tan(fov / 2.0) / max(MIN_SIDE, view_side)
        seen = visibility(context, objects, centre + candidates * distance, pixel)
        picked, estimate = texmath.greedy_views(seen, target, budget)
        directions, coverage = candidates[picked], tuple(estimate)
        reachable = float(seen.any(axis=0).mean())
    else:
        raise ValueError(f"unknown camera placement {strategy!r}; use ORBIT, SPHERE, "
                         "HEMISPHERE or GREEDY")  # fmt: skip
    if replace:
        clear(scene)
    group = collection(scene)
    made = []
    for n, direction in enumerate(directions):
        made.append(_camera(group, f"Sfumato View {n + 1}", centre, direction, distance, radius))
        settings.cameras.add().camera = made[-1]
    settings.camera_index = len(settings.cameras) - 1
    return Placement(tuple(made), coverage, reachable)


def _camera(
    group: Any, name: str, centre: np.ndarray, direction: np.ndarray, distance: float, radius: float
) -> Any:
    data = bpy.data.cameras.new(name)
    data.clip_start = max(1e-3, (distance - radius) * 0.5)
    data.clip_end = distance + radius * 2.0
    cam = bpy.data.objects.new(name, data)
    cam[TAG] = True
    cam.location = Vector(centre + direction * distance)
    look = Vector(-direction)
    cam.rotation_euler = look.to_track_quat("-Z", "Y").to_euler()  # frame up: world up
    group.objects.link(cam)
    return cam


def clear(scene: Any) -> None:
    """Delete the texture cameras Sfumato made and empty the list."""
    settings = scene.sfumato.texturing
    for item in settings.cameras:
        cam = item.camera
        if cam is not None and cam.get(TAG):
            data = cam.data
            bpy.data.objects.remove(cam)
            if data is not None and data.users == 0:
                bpy.data.cameras.remove(data)
    settings.cameras.clear()
    settings.camera_index = 0


def ordered(scene: Any) -> list[Any]:
    """The cameras to paint, in order: the list's (skipping deleted ones and non-cameras),
    then any other camera the user put into the collection, by name."""
    listed = [i.camera for i in scene.sfumato.texturing.cameras]
    cams = [c for c in listed if c is not None and c.type == "CAMERA" and c.name in scene.objects]
    group = bpy.data.collections.get(COLLECTION)
    if group is not None:
        extra = [o for o in group.all_objects if o.type == "CAMERA" and o not in cams]
        cams += sorted((o for o in extra if o.name in scene.objects), key=lambda o: o.name)
    return cams


def visibility(
    context: Any, objects: Sequence[Any], positions: np.ndarray, pixel: float = 0.0
) -> np.ndarray:
    """C×N: which of ``SAMPLES`` area-weighted surface points on ``objects`` a camera at each
    of ``positions`` sees — facing it by more than ``FACING`` and with nothing in between
    (every rendered mesh occludes, the targets themselves too). With ``pixel`` (the size of
    one view pixel per unit of distance) a point also needs the surface around it, 1.5
    pixels each way across the frame, to be seen at about its depth: the server's depth test
    drops texels next to an edge in the depth pass, so a point seen only at an edge is not
    really painted from there."""
    depsgraph = context.evaluated_depsgraph_get()
    triangles = np.concatenate([texbake.world_triangles(o, depsgraph) for o in objects])
    points, normals = texmath.area_samples(triangles, SAMPLES)
    tree = _scene_tree(context.scene, depsgraph)
    seen = np.zeros((len(positions), len(points)), dtype=bool)
    lift = 1e-4 * max(1.0, float(np.abs(triangles).max()))
    for c, position in enumerate(positions):
        to_camera = position - points
        length = np.linalg.norm(to_camera, axis=1)
        ray = to_camera / length[:, None]
        facing = np.einsum("ij,ij->i", ray, normals) > FACING
        across = _frame_axes(position - points.mean(axis=0))
        eye = Vector(position)
        for i in np.nonzero(facing)[0]:
            start = Vector(points[i] + normals[i] * lift)
            if tree.ray_cast(start, Vector(ray[i]), float(length[i]))[0] is not None:
                continue
            seen[c, i] = pixel <= 0.0 or _clear_around(
                tree, eye, points[i], across * (1.5 * pixel * length[i]), length[i]
            )
    return seen


def _frame_axes(backward: np.ndarray) -> np.ndarray:
    """The frame's right and up axes (2×3) for a camera looking along −``backward``."""
    back = backward / np.linalg.norm(backward)
    right = np.cross((0.0, 0.0, 1.0), back)
    if np.linalg.norm(right) < 1e-6:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(back, right)])


def _clear_around(
    tree: BVHTree, eye: Vector, point: np.ndarray, offsets: np.ndarray, distance: float
) -> bool:
    """Whether rays from the camera to ``point`` ± each offset all meet a surface near the
    point's own distance (nothing nearer in front, no fall past a silhouette)."""
    slack = 0.02 * distance + 2.0 * float(np.linalg.norm(offsets[0]))
    for offset in (*offsets, *(-offsets)):
        target = Vector(point + offset) - eye
        hit = tree.ray_cast(eye, target.normalized(), target.length + slack)
        if hit[0] is None or abs(hit[3] - target.length) > slack:
            return False
    return True


def _scene_tree(scene: Any, depsgraph: Any) -> BVHTree:
    """One BVH over every rendered mesh's world-space triangles."""
    parts = []
    for obj in scene.objects:
        if obj.type == "MESH" and not obj.hide_render and obj.visible_get():
            parts.append(texbake.world_triangles(obj, depsgraph))
    triangles = np.concatenate(parts) if parts else np.zeros((0, 3, 3))
    verts = triangles.reshape(-1, 3)
    polygons = np.arange(len(verts)).reshape(-1, 3)
    return BVHTree.FromPolygons(verts.tolist(), polygons.tolist())
