"""Grid thumbnails: a batch of 1024² outputs is megabytes an image, and the grid shows them at
a few hundred pixels. Made on first request with Pillow (lazily; without it the grid gets the
originals), kept in memory keyed by the file's modification time, never written to the batch."""

from __future__ import annotations

import io
import threading
from pathlib import Path

SIDE = 384  # the card is ~220 CSS px wide: sharp on a 1.5× display
MAX_CACHED = 2000


class Thumbnails:
    def __init__(self, side: int = SIDE) -> None:
        self.side = side
        self._cache: dict[tuple[str, int], tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> tuple[bytes, str]:
        """(bytes, content type) of the thumbnail; an image already small enough as it is."""
        stamp = (str(path), path.stat().st_mtime_ns)
        with self._lock:
            hit = self._cache.get(stamp)
        if hit:
            return hit
        data = path.read_bytes()
        made = self._shrink(data)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[stamp] = made
        return made

    def _shrink(self, data: bytes) -> tuple[bytes, str]:
        try:
            from PIL import Image
        except ImportError:
            return data, "image/png"
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) <= self.side:
                return data, "image/png"
            im.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            im.convert("RGB").save(out, "JPEG", quality=88)
        return out.getvalue(), "image/jpeg"
