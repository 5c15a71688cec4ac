"""Image files ↔ uint8 arrays for the CLI and the result store (Pillow, imported lazily so the
host-side client never needs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .protocol import SfumatoError


class ImageFileError(SfumatoError, ValueError):
    pass


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImageFileError(
            "reading and writing images needs Pillow: pip install pillow"
        ) from None
    return Image


def read_image(path: Path) -> np.ndarray:
    """uint8 H×W×3 (or ×4 when the file has alpha), sRGB, row 0 at the top."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            mode = "RGBA" if "A" in im.getbands() else "RGB"
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise ImageFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise ImageFileError(f"{path} is not an image Pillow can read: {exc}") from None


def read_mask(path: Path) -> np.ndarray:
    """uint8 H×W×1 where 255 means regenerate (white in the file)."""
    image = read_image(path)
    if image.shape[2] == 4 and image[:, :, :3].max() == 0:  # black with alpha: alpha is the mask
        return np.ascontiguousarray(image[:, :, 3:4])
    gray = image[:, :, :3].astype(np.uint16).sum(axis=2) // 3
    return gray.astype(np.uint8)[:, :, None]


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of uint8 H×W×{1,3,4}; level 1 because speed matters more than bytes here."""
    import io

    Image = _pil()
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, "PNG", compress_level=compress_level)
    return out.getvalue()


def write_png(path: Path, pixels: np.ndarray, compress_level: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(pixels, compress_level))
    return path
