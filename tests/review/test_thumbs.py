"""Grid thumbnails: large outputs shrink to the card's size, small ones are served as they are,
and a file rewritten since is thumbnailed again."""

from __future__ import annotations

import io
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sfumato.review.thumbs import SIDE, Thumbnails


@settings(max_examples=15, deadline=None)
@given(st.integers(16, 1200), st.integers(16, 1200))
def test_any_size_fits_the_card_without_growing(width: int, height: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.png"
        Image.new("RGB", (width, height), (200, 30, 40)).save(path)
        data, mime = Thumbnails().get(path)
        with Image.open(io.BytesIO(data)) as im:
            if max(width, height) <= SIDE:
                assert data == path.read_bytes() and mime == "image/png"
            else:
                assert mime == "image/jpeg" and max(im.size) == SIDE
                long, short = (0, 1) if width >= height else (1, 0)
                assert im.size[long] == SIDE  # the shape kept: the short side within a pixel
                assert abs(im.size[short] - (width, height)[short] * SIDE / max(width, height)) <= 1
                r, g, b = im.convert("RGB").getpixel((im.size[0] // 2, im.size[1] // 2))
                assert abs(r - 200) < 8 and abs(g - 30) < 8 and abs(b - 40) < 8


def test_a_rewritten_file_is_thumbnailed_again(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    Image.new("RGB", (800, 800), "red").save(path)
    thumbs = Thumbnails()
    first = thumbs.get(path)
    assert thumbs.get(path) is first  # cached
    Image.new("RGB", (800, 800), "blue").save(path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with Image.open(io.BytesIO(thumbs.get(path)[0])) as im:
        assert im.convert("RGB").getpixel((10, 10))[2] > 200  # blue now
