"""The tasks that change the canvas: outpaint (grow it) and upscale (enlarge it by tiles).

Outpaint is inpainting on a grown canvas. The new margins start as the image's edge pixels
stretched outwards and heavily blurred (so the denoiser starts from the right colours, not
from grey), the mask is 255 over the margins and ramps down to 0 across a blend band
:data:`BLEND` pixels into the original, and paste-back keeps every original pixel outside
that band bit for bit.

Upscale enlarges with Lanczos, then re-details with img2img tile by tile: tiles of
``tile`` pixels overlapping by a quarter, each blended in with weights that fall to zero at the
tile's inner edges (a feathered, separable ramp), so no seam shows where tiles meet. Only one
tile is in the pipeline at a time, so memory is that of one tile whatever the output size; the
output is accumulated in float on the CPU. ``params.strength`` applies per tile: low values
(~0.3) add detail, high ones repaint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

from ..protocol.messages import JobParams, Task
from . import images
from .control import PreparedControl, pipeline_kwargs
from .loader import Pipeline
from .tasks import Steps, check_strength, common, inpaint

BLEND = 16  # pixels of the original that outpaint blends into the new margins
OVERLAP_FRACTION = 4  # upscale tiles overlap by a quarter of their side


def outpaint(
    pipe: Pipeline,
    params: JobParams,
    image: np.ndarray,
    seeds: Sequence[int],
    steps: Steps,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """Grow ``image`` by params.expand (left, top, right, bottom) and fill the margins."""
    rgb = images.to_rgb(image)
    canvas, mask = grow(rgb, params.expand)
    return inpaint(pipe, params, canvas, mask, seeds, steps, controls)


def grow(rgb: np.ndarray, expand: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The grown canvas (original pixels exact, margins edge-filled and blurred) and its mask
    (uint8 H×W×1: 255 in the margins, a ramp across the blend band, 0 elsewhere)."""
    left, top, right, bottom = expand
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode="edge")
    radius = max(4, max(expand) // 4)
    blurred = np.asarray(Image.fromarray(padded).filter(ImageFilter.GaussianBlur(radius)))
    canvas = blurred.copy()
    canvas[top : top + h, left : left + w] = rgb
    # Distance of each original pixel from the expanded sides, in pixels (inf: side not grown).
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    inf = np.inf
    distance = np.minimum.reduce(
        [
            np.broadcast_to(xs if left else inf, (h, w)),
            np.broadcast_to(ys if top else inf, (h, w)),
            np.broadcast_to(w - 1 - xs if right else inf, (h, w)),
            np.broadcast_to(h - 1 - ys if bottom else inf, (h, w)),
        ]
    )
    band = min(BLEND, max(1, min(h, w) // 4))
    ramp = np.clip(1.0 - distance / band, 0.0, 1.0)
    mask = np.full(canvas.shape[:2], 255, np.uint8)
    mask[top : top + h, left : left + w] = np.rint(ramp * 255).astype(np.uint8)
    return canvas, mask[:, :, None]


def upscale(
    pipe: Pipeline,
    params: JobParams,
    image: np.ndarray,
    seeds: Sequence[int],
    steps: Steps,
    tile: int,
    controls: tuple[PreparedControl, ...] = (),
) -> tuple[np.ndarray, ...]:
    """``image`` × params.scale: Lanczos, then img2img over feathered, overlapping tiles."""
    check_strength(params, Task.UPSCALE)
    rgb = images.to_rgb(image)
    size = (rgb.shape[1] * params.scale, rgb.shape[0] * params.scale)
    big = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    boxes = tiles(size, tile)
    steps.calls = len(boxes)
    out = []
    for seed in seeds:
        total = np.zeros((size[1], size[0], 3), np.float64)
        weight = np.zeros((size[1], size[0], 1), np.float64)
        for box in boxes:
            steps.check()
            x0, y0, x1, y1 = box
            crop = big[y0:y1, x0:x1]
            work = images.work_size(x1 - x0, y1 - y0)
            result = pipe(
                **common(params, seed, steps),
                **pipeline_kwargs(controls, work, "control_image", crop=box),
                image=images.to_pil(crop, work),
                strength=params.strength,
            )
            steps.check()
            detailed = images.from_pipeline(result.images[0], (x1 - x0, y1 - y0))
            w = feather(box, size)
            total[y0:y1, x0:x1] += detailed * w
            weight[y0:y1, x0:x1] += w
        out.append(np.clip(np.rint(total / weight), 0, 255).astype(np.uint8))
    return tuple(out)


def tiles(size: tuple[int, int], tile: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) boxes of side ≤ ``tile`` covering ``size``, overlapping by
    at least tile/4, spread evenly so that no tile is a sliver."""
    xs = _starts(size[0], tile)
    ys = _starts(size[1], tile)
    return [(x, y, min(x + tile, size[0]), min(y + tile, size[1])) for y in ys for x in xs]


def _starts(length: int, tile: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - tile // OVERLAP_FRACTION
    n = -(-(length - tile) // step) + 1  # ceil: enough tiles that steps never exceed `step`
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def feather(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """H×W×1 blend weights of one tile: a linear ramp over the overlap on every side that
    meets another tile (the image's own edges keep full weight), never exactly zero."""
    x0, y0, x1, y1 = box
    ramp = max(1, (x1 - x0) // OVERLAP_FRACTION), max(1, (y1 - y0) // OVERLAP_FRACTION)

    def axis(start: int, end: int, length: int, width: int) -> np.ndarray:
        i = np.arange(end - start, dtype=np.float64)
        up = (i + 0.5) / width if start > 0 else np.ones_like(i)
        down = (end - start - i - 0.5) / width if end < length else np.ones_like(i)
        return np.clip(np.minimum(up, down), 1e-3, 1.0)

    wx = axis(x0, x1, size[0], ramp[0])
    wy = axis(y0, y1, size[1], ramp[1])
    return (wy[:, None] * wx[None, :])[:, :, None]
