"""Blender → arrays: the depth and normal passes of the scene seen from a camera, and the
pixels of existing images. One of the two modules that touch bpy's image and render APIs.

Passes are rendered with Cycles on the CPU (1 sample, no denoising, a pixel-sized filter so
each pixel is its centre) into a multi-layer EXR, which OpenEXR reads: the compositor's
Viewer node is never filled in background mode, and Render Result pixels are not readable
from Python, so a file is the one path that works in the UI and in ``blender -b`` alike —
for Cycles' own engine; the texture cameras' passes skip the file by running Cycles under an
engine of the add-on's that sees its result (``passcapture``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from . import geometry
from .scene import BACKDROP_TAG

BACKGROUND_Z = 1e9  # Cycles writes 1e10 where no surface was hit


@dataclass(frozen=True)
class Passes:
    """What a camera sees, row 0 at the top (the protocol's order, and the EXR's)."""

    depth: np.ndarray  # H×W float32: distance from the camera plane, 0 on the background
    background: np.ndarray  # H×W bool: no surface was hit
    normal: np.ndarray  # H×W×3 float32: unit normals in camera space (x right, y up, z to us)

    @property
    def far(self) -> float:
        """The farthest surface seen, 0 when the frame is empty."""
        hit = self.depth[~self.background]
        return float(hit.max()) if hit.size else 0.0


def render_layers(
    scene: Any,
    camera: Any,
    view_layer: Any,
    width: int,
    height: int,
    extra: Sequence[tuple[Any, str, Any]] = (),
) -> dict[str, np.ndarray]:
    """One pass render's channels by name; ``extra`` settings (more passes: UV, object
    index) are set, checked and restored like the others."""
    folder = Path(tempfile.mkdtemp(prefix="sfumato-passes-"))
    try:
        path = folder / "passes.exr"
        with pass_settings(scene, camera, view_layer, width, height, path, extra):
            bpy.ops.render.render(write_still=True, scene=scene.name, layer=view_layer.name)
        return read_exr(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def passes_of(layers: dict[str, np.ndarray], camera: Any) -> Passes:
    """Depth and camera-space normals from a pass render's channels."""
    z = channel(layers, "Depth.Z")
    background = z >= BACKGROUND_Z
    planes = [channel(layers, f"Normal.{c}") for c in "XYZ"]
    rotation = np.array(camera.matrix_world.to_3x3().normalized(), dtype=np.float32)
    normal = geometry.planes_to_camera(planes, rotation)
    for axis in range(3):  # plane by plane: 0.1 ms at 512², normal[background] 1.2 ms
        normal[..., axis][background] = 0.0
    return Passes(np.where(background, np.float32(0.0), z), background, normal)


@contextlib.contextmanager
def pass_settings(
    scene: Any,
    camera: Any,
    view_layer: Any,
    width: int,
    height: int,
    path: Path,
    extra: Sequence[tuple[Any, str, Any]] = (),
) -> Iterator[None]:
    """Set what a fast, exact pass render needs; put every value back on the way out.

    Square pixels: ``width``×``height`` is the frame's display shape already (pixel aspect
    applied), and Blender cannot write a multi-layer EXR of non-square pixels ("Conflicting
    attributes … pixelAspectRatio")."""
    render, cycles, image = scene.render, scene.cycles, scene.render.image_settings
    wanted: list[tuple[Any, str, Any]] = [
        (scene, "camera", camera),
        (render, "engine", "CYCLES"),
        (render, "resolution_x", width),
        (render, "resolution_y", height),
        (render, "resolution_percentage", 100),
        (render, "pixel_aspect_x", 1.0),
        (render, "pixel_aspect_y", 1.0),
        (render, "use_border", False),
        (render, "use_compositing", False),
        (render, "use_sequencer", False),
        (render, "use_single_layer", True),
        (render, "use_multiview", False),
        (render, "filepath", str(path)),
        (cycles, "device", "CPU"),
        (cycles, "samples", 1),
        (cycles, "use_adaptive_sampling", False),
        (cycles, "use_denoising", False),
        (cycles, "max_bounces", 0),
        (cycles, "filter_width", 0.01),  # sample the pixel centre: depth is exact at edges
        (view_layer, "use_pass_z", True),
        (view_layer, "use_pass_normal", True),
        *([(image, "media_type", "MULTI_LAYER_IMAGE")] if bpy.app.version >= (5, 0, 0) else []),
        (image, "file_format", "OPEN_EXR_MULTILAYER"),
        (image, "color_depth", "32"),
        (image, "exr_codec", "NONE"),
        *extra,
    ]
    check_settings(wanted)
    # a backdrop made earlier would stand in for the background in the passes
    hidden = [o for o in scene.objects if o.get(BACKDROP_TAG)]
    saved = [(owner, snapshot(owner)) for owner in _touched(scene, view_layer)]
    was = [(scene, "camera", scene.camera)] + [(o, "hide_render", o.hide_render) for o in hidden]
    try:
        for owner, name, value in wanted:
            setattr(owner, name, value)
        for o in hidden:
            o.hide_render = True
        yield
    finally:
        for owner, name, value in was:
            setattr(owner, name, value)
        for owner, values in saved:
            restore(owner, values)


def check_settings(wanted: list[tuple[Any, str, Any]]) -> None:
    """Every setting the pass render needs exists in this Blender: one that was renamed or
    removed would otherwise be skipped silently and the passes come out wrong (denoised,
    compressed, at the wrong size). Checked in 4.2, 5.0 and 5.2; ``media_type`` is Blender 5's
    and is only asked for there."""
    missing = [f"{owner.bl_rna.identifier}.{name}" for owner, name, _ in wanted
               if not hasattr(owner, name)]  # fmt: skip
    if missing:
        raise RuntimeError(
            f"Blender {bpy.app.version_string} has no {', '.join(missing)}, which Sfumato's "
            "depth and normal render sets; use a Blender release the add-on supports (see its "
            "manifest) or update the add-on"
        )


def _touched(scene: Any, view_layer: Any) -> list[Any]:
    """Every struct whose values a pass render changes, directly or as a side effect: the
    image settings' own colour management too (a file format switch may reset it)."""
    image = scene.render.image_settings
    nested = ["view_settings", "display_settings"]
    # the file's linear colour space: only meaningful (and only readable without Blender
    # warning of an unset enum) for a linear format or an overridden colour management
    if getattr(image, "has_linear_colorspace", False) or image.color_management == "OVERRIDE":
        nested.append("linear_colorspace_settings")
    owners = [scene.render, image, scene.cycles, view_layer]
    return owners + [getattr(image, n) for n in nested if getattr(image, n, None) is not None]


# Image settings whose setting resets others, first in this order: in Blender 5 setting
# ``media_type`` resets ``file_format``, and ``file_format`` resets the depth and the codecs.
FIRST = ("media_type", "file_format")


def snapshot(owner: Any) -> dict[str, Any]:
    """Every writable plain value of an RNA struct (pointers and collections left out)."""
    values: dict[str, Any] = {}
    for prop in owner.bl_rna.properties:
        name = prop.identifier
        if prop.is_readonly or prop.type in {"POINTER", "COLLECTION"} or name == "rna_type":
            continue
        values[name] = _plain(getattr(owner, name))
    return values


def restore(owner: Any, values: dict[str, Any]) -> list[str]:
    """Put ``values`` (from :func:`snapshot`) back on ``owner``, setting only what differs, in
    dependency order and again while a later setting undid an earlier one. Returns the names
    it could not restore (empty when the struct is as it was)."""
    order = [n for n in FIRST if n in values] + [n for n in values if n not in FIRST]
    for _ in range(3):
        changed = [n for n in order if _plain(getattr(owner, n)) != values[n]]
        if not changed:
            return []
        for name in changed:
            with contextlib.suppress(AttributeError, TypeError, ValueError, RuntimeError):
                setattr(owner, name, values[name])
    return [n for n in order if _plain(getattr(owner, n)) != values[n]]


def _plain(value: Any) -> Any:
    """A comparable copy: RNA arrays (and arrays of arrays) as tuples, flag sets as sets."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, set):
        return set(value)
    try:
        return tuple(_plain(v) for v in value)
    except TypeError:
        return value


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Every channel of a multi-layer EXR, by its full name (``ViewLayer.Depth.Z`` …). Blender
    writes one part per pass."""
    import OpenEXR  # bundled with Blender ≥ 4.2; imported here so the add-on loads without it

    channels: dict[str, np.ndarray] = {}
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        for part in exr.parts:
            for name, channel in part.channels.items():
                channels[name] = np.asarray(channel.pixels, dtype=np.float32)
    return channels


def channel(layers: dict[str, np.ndarray], *suffixes: str) -> np.ndarray:
    """The channel whose name ends in one of ``suffixes`` (passes are renamed across
    releases: 4.2's ``IndexOB.X`` is 5.0's ``Object Index.X``)."""
    for name, pixels in layers.items():
        if any(name == s or name.endswith("." + s) for s in suffixes):
            return pixels
    suffix = " or ".join(suffixes)
    raise RuntimeError(f"the pass render wrote no {suffix} channel (found {sorted(layers)})")


def image_pixels(image: Any) -> np.ndarray:
    """An image's pixels as uint8 sRGB RGBA, row 0 at the top (what the protocol carries).
    Byte images hold their sRGB values already; float images are linear and are encoded."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"image {image.name!r} has no pixels (is its file missing?)")
    flat = np.empty(width * height * image.channels, dtype=np.float32)
    image.pixels.foreach_get(flat)
    rgba = _to_rgba(flat.reshape(height, width, image.channels))
    if image.is_float:
        rgba[..., :3] = linear_to_srgb(rgba[..., :3])
    return np.ascontiguousarray(np.round(np.clip(rgba, 0.0, 1.0) * 255.0)[::-1]).astype(np.uint8)


def mask_pixels(image: Any, width: int, height: int) -> np.ndarray:
    """A painted mask image as the protocol's mask: uint8, 255 where it is brighter than half
    (white = regenerate), row 0 at the top. It must be the texture's size."""
    if tuple(image.size) != (width, height):
        raise ValueError(
            f"mask image {image.name!r} is {image.size[0]}×{image.size[1]} but the texture is "
            f"{width}×{height}; paint the mask at the texture's size"
        )
    rgba = image_pixels(image).astype(np.float32)
    grey = rgba[..., :3].mean(axis=-1) * (rgba[..., 3] / 255.0)
    return np.where(grey >= 128.0, 255, 0).astype(np.uint8)


def _to_rgba(pixels: np.ndarray) -> np.ndarray:
    channels = pixels.shape[-1]
    if channels == 4:
        return pixels.copy()
    out = np.ones((*pixels.shape[:2], 4), dtype=np.float32)
    out[..., :3] = pixels[..., :1] if channels < 3 else pixels[..., :3]
    return out


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055
    ).astype(np.float32)
