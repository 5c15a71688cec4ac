"""Small scenes built in the tests (fresh file each time), kept tiny: 64–128 px, 1 sample."""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np


def camera(
    location: tuple[float, float, float] = (0.0, -6.0, 2.0), *, width: int = 128, height: int = 64
) -> Any:
    """An active camera looking at the origin, and the render size the tests expect."""
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.location = location
    direction = -np.array(location, dtype=float)
    pitch = math.atan2(math.hypot(direction[0], direction[1]), -direction[2])
    yaw = math.atan2(direction[1], direction[0]) - math.pi / 2
    cam.rotation_euler = (pitch, 0.0, yaw)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    bpy.context.view_layer.update()
    return cam


def cube(location: tuple[float, float, float] = (0.0, 0.0, 0.0), size: float = 2.0) -> Any:
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    return bpy.context.active_object


def select(*objects: Any) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    if objects:
        bpy.context.view_layer.objects.active = objects[-1]


def textured_plane(width: int = 128, height: int = 64, seed: int = 0) -> tuple[Any, Any]:
    """A plane cut in two faces (left and right halves in UV space) with a random packed
    texture through a material: something to inpaint without asking the server first."""
    mesh = bpy.data.meshes.new("Plane")
    verts = [(-2, -1, 0), (0, -1, 0), (2, -1, 0), (2, 1, 0), (0, 1, 0), (-2, 1, 0)]
    mesh.from_pydata(verts, [], [(0, 1, 4, 5), (1, 2, 3, 4)])
    uv = mesh.uv_layers.new(name="UVMap")
    corner_uv = {0: (0, 0), 1: (0.5, 0), 2: (1, 0), 3: (1, 1), 4: (0.5, 1), 5: (0, 1)}
    uv.uv.foreach_set("vector", [c for loop in mesh.loops for c in corner_uv[loop.vertex_index]])
    obj = bpy.data.objects.new("Plane", mesh)
    bpy.context.scene.collection.objects.link(obj)
    rng = np.random.default_rng(seed)
    image = bpy.data.images.new("Painted", width, height)
    pixels = np.ones((height, width, 4), dtype=np.float32)
    pixels[..., :3] = rng.integers(0, 256, (height, width, 3)) / 255.0
    image.pixels.foreach_set(pixels.ravel())
    image.pack()
    material = bpy.data.materials.new("Painted")
    if bpy.app.version < (5, 0, 0):  # node trees are always on in 5.0
        material.use_nodes = True
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    bsdf = material.node_tree.nodes["Principled BSDF"]
    material.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    mesh.materials.append(material)
    return obj, image


def pixels(image: Any) -> np.ndarray:
    """An image's pixels as float32 H×W×4, bottom row first (Blender's order)."""
    width, height = image.size
    out = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(out)
    return out.reshape(height, width, 4)
