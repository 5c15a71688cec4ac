"""Texture cameras: where the views of a whole-object texture are taken from.

Three placements: an orbit ring, an even spread over the sphere or the upper hemisphere, and
greedy coverage — from many candidate directions, repeatedly the one that paints the most
surface no camera picked so far paints. "Paints" is the server's own rule (docs/protocol.md
4.2.4), worked out host-side: each candidate view's depth and object mask are rasterised
from every rendered mesh (texmath.rasterise: the same pixels as Cycles' passes), and an
area-weighted surface sample counts where the server would give it weight from that view
(facing it, its footprint away from the mask's edge, its depth matching the pass). Every
camera looks at the centre of the targets' bounds from a distance that fits their bounding
sphere in its frame. Cameras live in one collection and the order the server paints them in
is the list ``Scene.sfumato.texturing.cameras``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np
from mathutils import Quaternion, Vector

from . import texbake, texmath

COLLECTION = "Sfumato Texture Cameras"
TAG = "sfumato_texture_camera"  # marks cameras made here
CANDIDATES = 256  # directions greedy coverage chooses from
SAMPLES = 8000  # surface points per target set for the coverage estimate
MIN_SIDE = 64
RASTER_MAX = 256  # greedy's candidate views are rasterised at most this size a side


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
    ``view_side``: the views' size in pixels (greedy counts what the server paints at that
    size; larger views are counted at RASTER_MAX, where a little less is painted: a
    cautious estimate that keeps placement about a second)."""
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
        views = [(centre + d * distance, centre) for d in candidates]
        side = min(RASTER_MAX, max(MIN_SIDE, view_side))
        seen = visibility(context, objects, views, fov, side)
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
    cam.rotation_euler = _looking(-direction).to_euler()
    group.objects.link(cam)
    return cam


def _looking(forward: np.ndarray) -> Quaternion:
    """A camera's rotation looking along ``forward``, the frame's up toward world up."""
    return Vector(forward).to_track_quat("-Z", "Y")


def world_to_camera(position: np.ndarray, aim: np.ndarray) -> np.ndarray:
    """The 4×4 world → camera matrix of a camera at ``position`` looking at ``aim``, as
    ``place`` makes it (the inverse of its matrix_world)."""
    rotation = np.array(_looking(np.asarray(aim) - position).to_matrix(), dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ np.asarray(position, dtype=np.float64)
    return out


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
    context: Any,
    objects: Sequence[Any],
    cameras: Sequence[tuple[np.ndarray, np.ndarray]],
    fov: float,
    side: int,
) -> np.ndarray:
    """C×N: which of ``SAMPLES`` area-weighted surface points on ``objects`` each camera
    (its position and the point it looks at; field of view ``fov``, side×side pixels)
    paints by the server's rules: the view's depth and each target's mask are rasterised
    from every rendered mesh (other objects and the targets themselves occlude), and a
    point counts where the server would give it weight (texmath.painted_from)."""
    depsgraph = context.evaluated_depsgraph_get()
    parts = [texbake.world_triangles(o, depsgraph) for o in objects]
    triangles = np.concatenate(parts)
    owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    points, normals, chosen = texmath.area_samples(triangles, SAMPLES)
    belongs = owner[chosen]
    names = {o.name for o in objects}
    others = [
        texbake.world_triangles(o, depsgraph)
        for o in context.scene.objects
        if o.type == "MESH" and not o.hide_render and o.visible_get() and o.name not in names
    ]
    scene_tris = np.concatenate([triangles, *others])
    scene_owner = np.concatenate([owner, np.full(len(scene_tris) - len(triangles), -1)])
    focal = 1.0 / math.tan(fov / 2.0)
    seen = np.zeros((len(cameras), len(points)), dtype=bool)
    for c, (position, aim) in enumerate(cameras):
        to_camera = world_to_camera(position, aim)
        depth, found = texmath.rasterise(scene_tris, scene_owner, to_camera, focal, side)
        for k in range(len(parts)):
            mine = np.flatnonzero(belongs == k)
            seen[c, mine] = texmath.painted_from(
                points[mine], normals[mine], to_camera, focal, depth, found == k
            )
    return seen
