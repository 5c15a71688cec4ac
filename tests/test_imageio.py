"""The result store's fast PNG writer gives back exactly the pixels, in every layout."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from sfumato.imageio import encode_png


@pytest.mark.parametrize("shape", [(5, 7, 1), (5, 7, 3), (5, 7, 4), (64, 33, 3), (1, 1, 3)])
@pytest.mark.parametrize("level", [0, 1])
def test_png_round_trips_exactly(shape: tuple[int, int, int], level: int) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(encode_png(pixels, level))) as image:
        back = np.asarray(image)
    assert np.array_equal(back.reshape(shape), pixels)


def test_level_zero_is_stored_and_level_six_compresses() -> None:
    flat = np.zeros((64, 64, 3), np.uint8)
    assert len(encode_png(flat, 0)) > 64 * 64 * 3 > 50 * len(encode_png(flat, 6))
