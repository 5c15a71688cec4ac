"""Control inputs → the control maps ControlNets were trained on, and the pipeline arguments.

Clients send what their host knows (docs/protocol.md, "Conditioning"): Blender sends physical
passes (float depth, float normals), Krita sends pictures or ready maps (uint8). Every kind ends
here as a uint8 RGB map at the output size, so the tasks only crop and resize.

Depth (float32/16 H×W×1, linear distance from the camera plane, scene units):
    ControlNet depth models were trained on MiDaS/Zoe output: relative *inverse* depth, near
    bright, far dark. So the map is disparity 1/z, normalised over the foreground to
    [DEPTH_FLOOR, 1]: the nearest surface is white, the farthest foreground surface dark grey,
    background black. Inverse depth (not a linear remap of z) keeps the estimators' perspective
    compression: detail near the camera gets most of the grey levels, as in training. The floor
    keeps the farthest surface distinct from the background; a flat depth (all one distance)
    is all white. Background is the client's mask (255 = background), plus any distance that is
    not finite, ≤ 0, or ≥ 1e9 (Cycles writes 1e10 where no surface was hit).

Normals (float32/16 H×W×3, unit vectors in camera space, OpenGL/Blender camera convention:
x right, y up, z toward the camera):
    The SD1.5 normalbae ControlNet was trained on controlnet_aux's NormalBaeDetector output,
    which stores Bae et al.'s network output as ``(n + 1) / 2`` per channel. Bae's convention
    (the ScanNet/NYU ground truth it was trained on; DSINE's depth-to-normal code derives it) is
    (left, up, toward the camera): a surface facing the camera is (128, 128, 255), one facing
    left (−x) is (255, 128, 128), one facing up (+y) is (128, 255, 128). So R = (1 − x)/2,
    G = (1 + y)/2, B = (1 + z)/2. Zero-length vectors (no surface) become black, as the
    dataset's invalid pixels are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..protocol.conditioning import Control, ControlKind
from ..registry import ModelEntry
from .errors import bad_input

DEPTH_FLOOR = 0.1  # the farthest foreground surface, as a fraction of white
FAR = 1e9  # distances at or beyond this are background (Cycles: 1e10)


@dataclass(frozen=True)
class PreparedControl:
    """One control, ready for a pipeline: its ControlNet entry and its map at the output size."""

    kind: ControlKind
    entry: ModelEntry
    map: np.ndarray  # uint8 H×W×3 at the job's output size
    strength: float
    start: float
    end: float


def depth_to_map(depth: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """uint8 H×W×3 depth map (near white, far dark, background black) from distances."""
    z = np.asarray(depth, dtype=np.float64).reshape(depth.shape[0], depth.shape[1])
    with np.errstate(invalid="ignore"):
        surface = np.isfinite(z) & (z > 0) & (z < FAR)
    if background is not None:
        surface &= background.reshape(z.shape) < 128
    out = np.zeros(z.shape, np.float64)
    if surface.any():
        disparity = 1.0 / z[surface]
        lo, hi = disparity.min(), disparity.max()
        t = (disparity - lo) / (hi - lo) if hi > lo else np.ones_like(disparity)
        out[surface] = DEPTH_FLOOR + (1.0 - DEPTH_FLOOR) * t
    gray = np.rint(out * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def normal_to_map(normals: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 normalbae map from OpenGL camera-space unit normals (see the module doc)."""
    n = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=2, keepdims=True)
    surface = np.isfinite(length) & (length > 0.5)
    unit = np.where(surface, n / np.where(surface, length, 1.0), 0.0)
    bae = unit * np.array([-1.0, 1.0, 1.0])  # (right, up, toward) → (left, up, toward)
    rgb = np.rint((bae + 1.0) * 0.5 * 255.0).clip(0, 255).astype(np.uint8)
    rgb[~surface[:, :, 0]] = 0
    return rgb


def ready_map(image: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 from a ready map of 1, 3 or 4 channels. Alpha is composited over black:
    black is "no signal" in every control map (no edge, no line, farthest depth)."""
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.uint32)
        return ((image[:, :, :3].astype(np.uint32) * alpha + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def control_map(control: Control, size: tuple[int, int], seed: int) -> np.ndarray:
    """The control's map at ``size`` (width, height): converted, detected or used as is."""
    image = control.image.to_numpy()
    if image.dtype != np.uint8:
        if control.kind is ControlKind.DEPTH:
            mask = None if control.mask is None else control.mask.to_numpy()
            converted = depth_to_map(image, mask)
        elif control.kind is ControlKind.NORMAL:
            converted = normal_to_map(image)
        else:  # Control.check refuses this; keep the message if a caller skipped it
            raise bad_input(
                f"inputs.controls: {control.kind.value} takes a uint8 map, not {image.dtype}; "
                "send it as uint8 (only depth and normal take float data)",
                "inputs.controls",
            )
    elif control.preprocess:
        from .detectors import detect

        converted = detect(control.kind, ready_map(image), seed)
    else:
        converted = ready_map(image)
    return resize_map(converted, size)


def resize_map(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, not Lanczos: maps are piecewise flat and Lanczos rings at their edges."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def pipeline_kwargs(
    controls: tuple[PreparedControl, ...],
    size: tuple[int, int],
    key: str,
    crop: tuple[int, int, int, int] | None = None,
) -> dict[str, Any]:
    """The ControlNet arguments for one pipeline call at ``size`` (width, height).

    ``key`` is where the pipeline wants the maps (``image`` for txt2img, ``control_image`` for
    img2img and inpaint); ``crop`` = (left, top, right, bottom) of the output-size maps, for
    upscale tiles. One control passes plain values, several pass lists (MultiControlNet)."""
    if not controls:
        return {}
    maps = []
    for c in controls:
        m = c.map if crop is None else c.map[crop[1] : crop[3], crop[0] : crop[2]]
        maps.append(Image.fromarray(resize_map(np.ascontiguousarray(m), size)))
    values: dict[str, list[Any]] = {
        key: maps,
        "controlnet_conditioning_scale": [c.strength for c in controls],
        "control_guidance_start": [c.start for c in controls],
        "control_guidance_end": [c.end for c in controls],
    }
    if len(controls) == 1:
        return {name: items[0] for name, items in values.items()}
    return dict(values)
