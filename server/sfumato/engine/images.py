"""Pixels in and out of the pipelines: numpy uint8 at the engine's edge, PIL inside.

Inputs arrive as the protocol documents them (uint8 sRGB, H×W×3 or H×W×4, row 0 at the top;
masks uint8 H×W×1 with 255 = regenerate). The diffusers image processors take PIL images
(a uint8 numpy array would be read as if it were scaled 0–1), so conversion happens here,
once, with the choices written down:

- Alpha is composited over white: a transparent area of a Krita layer or a Blender render has
  arbitrary colour underneath, and white is what the artist saw on a blank canvas. An opaque
  pixel is unchanged, bit for bit.
- The UNet and VAE need sides that are multiples of 8 (and at least 64 px for useful latents):
  other sizes are resized (Lanczos) to the nearest such size for the pipeline and the result is
  resized back, so the output always has the input's size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import bad_input

MIN_SIDE = 64  # 8 latent pixels: the smallest size the UNets' downsampling handles usefully


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 from H×W×3 or H×W×4 (alpha composited over white, exact for opaque)."""
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise bad_input(
            f"inputs.image must be uint8 H×W×3 or H×W×4, got {image.dtype} {image.shape}; "
            "convert it to 8-bit RGB or RGBA",
            "inputs.image",
        )
    if image.shape[2] == 3:
        return np.ascontiguousarray(image)
    rgb = image[:, :, :3].astype(np.uint32)
    alpha = image[:, :, 3:].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def to_mask(mask: np.ndarray) -> np.ndarray:
    """uint8 H×W from H×W×1 or H×W."""
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise bad_input(
            f"inputs.mask must be uint8 H×W×1, got {mask.dtype} {mask.shape}; send one 8-bit channel",
            "inputs.mask",
        )
    return np.ascontiguousarray(mask)


def work_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) the pipeline runs at for an input of this size."""
    return _side(width), _side(height)


def _side(n: int) -> int:
    return max(MIN_SIDE, round(n / 8) * 8)


def to_pil(array: np.ndarray, size: tuple[int, int], *, mask: bool = False) -> Image.Image:
    """A PIL image of ``array`` at ``size`` (width, height), resized only if needed."""
    image = Image.fromarray(array)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR if mask else Image.Resampling.LANCZOS)
    return image


def from_pipeline(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W×3 at ``size`` (width, height) from a pipeline's float 0–1 H×W×3 output."""
    out = (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if (out.shape[1], out.shape[0]) != size:
        out = np.asarray(Image.fromarray(out).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(out)


def paste_back(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Keep ``original`` where the mask is 0, exactly; blend by mask/255 elsewhere.

    Latent inpainting re-encodes the whole image, so even unmasked pixels drift through the
    VAE; artists expect untouched pixels to stay untouched. A soft mask (a feathered Krita
    selection) blends proportionally instead of cutting a hard edge. (The pipeline itself
    binarises the mask at 128: it regenerates where mask ≥ 128, and this blend then feathers.)
    """
    weight = (mask.astype(np.float32) / 255.0)[:, :, None]
    blended = original.astype(np.float32) * (1.0 - weight) + generated.astype(np.float32) * weight
    out = np.clip(blended.round(), 0, 255).astype(np.uint8)
    out[mask == 0] = original[mask == 0]  # exact, whatever float rounding did
    return out
