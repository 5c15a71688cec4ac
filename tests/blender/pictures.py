"""Pictures for docs/blender.md, made by the Texture Object test: a turntable of the textured
object from four sides (Workbench, flat light, texture colours as they are) and its texture's
coverage (covered and filled texels in two colours). They go to ``$SFUMATO_BLENDER_PICTURES``
when set (``docs/images`` to retake the committed ones), else to the test's temp folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from .conftest import submodule


def folder(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SFUMATO_BLENDER_PICTURES", str(tmp_path)))
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_png(pixels: np.ndarray, path: Path, scale: int = 1) -> None:
    """uint8 RGB(A), row 0 at the top, as a PNG written by Blender (each pixel
    ``scale``×``scale``, for small textures)."""
    pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    height, width = pixels.shape[:2]
    rgba = np.full((height, width, 4), 255, dtype=np.uint8)
    rgba[..., : pixels.shape[2]] = pixels[..., :4]
    image = bpy.data.images.new("Sfumato Picture", width, height, alpha=True)
    image.pixels.foreach_set((rgba[::-1].astype(np.float32) / 255.0).ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


def turntable(obj: Any, side: int = 256) -> np.ndarray:
    """The object from four sides (front, right, back, left), side by side: uint8 RGB."""
    scene, texmath = bpy.context.scene, submodule("texmath")
    render = scene.render
    saved = (render.engine, render.resolution_x, render.resolution_y, scene.camera)
    shading = scene.display.shading
    shading_before = (shading.light, shading.color_type)
    view_before = scene.view_settings.view_transform
    centre, radius = submodule("texcams").bounds([obj])
    data = bpy.data.cameras.new("Turntable")
    cam = bpy.data.objects.new("Turntable", data)
    scene.collection.objects.link(cam)
    distance = texmath.framing_distance(radius, data.angle)
    tiles = []
    out = Path(tempfile.mkdtemp(prefix="sfumato-turntable-")) / "view.png"
    try:
        render.engine, render.resolution_x, render.resolution_y = "BLENDER_WORKBENCH", side, side
        render.resolution_percentage = 100
        shading.light, shading.color_type = "STUDIO", "TEXTURE"  # shape, and its texture
        scene.view_settings.view_transform = "Standard"  # the texture's colours as they are
        scene.camera = cam
        from mathutils import Vector

        for direction in texmath.orbit_directions(4, 15.0):
            cam.location = Vector(centre + direction * distance)
            cam.rotation_euler = Vector(-direction).to_track_quat("-Z", "Y").to_euler()
            render.filepath = str(out)
            bpy.ops.render.render(write_still=True)
            shot = bpy.data.images.load(str(out))
            pixels = np.empty(side * side * 4, dtype=np.float32)
            shot.pixels.foreach_get(pixels)
            bpy.data.images.remove(shot)
            tiles.append(pixels.reshape(side, side, 4)[::-1, :, :3])
    finally:
        render.engine, render.resolution_x, render.resolution_y, scene.camera = saved
        shading.light, shading.color_type = shading_before
        scene.view_settings.view_transform = view_before
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(data)
    return np.round(np.concatenate(tiles, axis=1) * 255.0).astype(np.uint8)
