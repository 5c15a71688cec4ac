"""How well camera-projection UVs line up with what the renderer draws (issue 9, items 6, 7).
Prints JSON.

    .venv-blender-5.0/bin/python benchmarks/blender_projection.py

For each scene, per corner of the *evaluated* mesh (what Cycles gets, after modifiers and
shape keys), the distance between its UV and where Blender's own ``world_to_camera_view``
puts its position; ``off`` is the fraction of corners off by more than 0.01 (1 % of the
frame), ``max`` the largest distance. ``before``: UVs projected from the undeformed mesh and
written into a UV map of the mesh (what the add-on did until issue 9); ``after``: the
add-on's projection modifier (blender_addon/projection.py). Runs offline, without a server.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="sfumato-bench-"))

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from _blender import install_addon, module  # benchmarks/_blender.py

install_addon()
geometry, scene_io, projection = (module(m) for m in ("geometry", "scene", "projection"))
WIDTH, HEIGHT = 128, 64


def fresh() -> Any:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (1.0, -9.0, 3.0), (1.25, 0.0, 0.1)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    return cam


def cube(location: tuple[float, float, float] = (0.4, 0.0, 0.0)) -> Any:
    bpy.ops.mesh.primitive_cube_add(size=1.4, location=location, rotation=(0.2, 0.3, 0.5))
    return bpy.context.active_object


def matrices(cam: Any) -> tuple[np.ndarray, np.ndarray]:
    return scene_io.camera_matrices(cam, bpy.context.evaluated_depsgraph_get(), WIDTH, HEIGHT)


def before(obj: Any, cam: Any) -> str:
    """The old way: project the mesh's own vertices, write a UV map of the mesh."""
    to_camera, clip = matrices(cam)
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    corners = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    m = np.array(obj.matrix_world)
    uvs = geometry.project(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3], to_camera, clip)[corners]
    layer = mesh.uv_layers.get("Before") or mesh.uv_layers.new(name="Before")
    layer.uv.foreach_set("vector", uvs.astype(np.float32).ravel())
    mesh.update()
    return "Before"


def after(obj: Any, cam: Any) -> str:
    to_camera, clip = matrices(cam)
    projection.project(
        obj, "After", geometry.projection_rows(to_camera, clip, np.array(obj.matrix_world))
    )
    return "After"


def errors(obj: Any, cam: Any, uv_map: str) -> dict[str, float]:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(depsgraph)
    mesh = ev.to_mesh()
    uv = np.empty(len(mesh.loops) * 2)
    mesh.uv_layers[uv_map].uv.foreach_get("vector", uv)
    m = obj.matrix_world
    scene = bpy.context.scene
    truth = np.array(
        [tuple(world_to_camera_view(scene, cam, m @ Vector(mesh.vertices[loop.vertex_index].co)))[:2] for loop in mesh.loops]
    )  # fmt: skip
    ev.to_mesh_clear()
    distance = np.abs(uv.reshape(-1, 2) - truth).max(axis=1)
    return {"corners": int(distance.size), "off": round(float(np.mean(distance > 0.01)), 3), "max": round(float(distance.max()), 4)}  # fmt: skip


def measure(name: str, build: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"scene": name}
    for label, method in (("before", before), ("after", after)):
        cam = fresh()
        measured, projected = build()
        for obj in projected:  # the last one written wins a shared mesh (linked duplicates)
            uv_map = method(obj, cam)
        out[label] = errors(measured, cam, uv_map)
    return out


def mirror_array_subsurf() -> tuple[Any, list[Any]]:
    obj = cube()
    obj.modifiers.new("Mirror", "MIRROR")
    obj.modifiers.new("Array", "ARRAY").count = 2
    obj.modifiers.new("Subdivision", "SUBSURF").levels = 2
    return obj, [obj]


def shape_key() -> tuple[Any, list[Any]]:
    obj = cube()
    obj.shape_key_add(name="Basis")
    key = obj.shape_key_add(name="Key")
    co = np.empty(len(key.data) * 3)
    key.data.foreach_get("co", co)
    co = co.reshape(-1, 3)
    co[:, 2] *= 1.8
    co[:, 0] += 0.5
    key.data.foreach_set("co", co.ravel())
    key.value = 1.0
    return obj, [obj]


def linked_duplicates() -> tuple[Any, list[Any]]:
    a = cube((-1.5, 0.0, 0.0))
    b = bpy.data.objects.new("B", a.data)
    bpy.context.scene.collection.objects.link(b)
    b.location = (1.8, 0.5, 0.3)
    bpy.context.view_layer.update()
    return a, [a, b]  # texture A, then B: is A still right?


if __name__ == "__main__":
    cases = [
        ("mirror + array + subdivision", mirror_array_subsurf),
        ("shape key at 1.0", shape_key),
        ("linked duplicates: A after texturing A then B", linked_duplicates),
    ]
    print(json.dumps({"blender": bpy.app.version_string, "cases": [measure(n, b) for n, b in cases]}, indent=1))  # fmt: skip
