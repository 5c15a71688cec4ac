"""Canvas and selection ↔ arrays, exactly, in the real Krita (kritarunner)."""

from __future__ import annotations

import base64

import numpy as np

from .conftest import KritaEnv


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def unb64(text: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape)


def test_pixels_selection_and_layers_round_trip_exactly(krita_env: KritaEnv) -> None:
    w, h = 40, 30
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., 3] = 255  # the document's projection over a transparent canvas would differ
    bgra = rgba[..., [2, 1, 0, 3]]
    layer = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    layer[:10, :, 3] = 0  # fully transparent rows
    layer[10:20, :, 3] = 255  # opaque rows
    layer[20:, :, 3] = 128  # half-transparent rows
    layer[:10, :, :3] = 0  # Krita keeps transparent pixels; make them unambiguous
    pw, ph, px, py = 9, 7, 13, 11
    rgb = rng.integers(0, 256, (ph, pw, 3), dtype=np.uint8)
    alpha = np.zeros((ph, pw), np.uint8)
    alpha[:, 3:] = 255
    alpha[2, :3] = 77
    region = [5, 4, 20, 22]  # x, y, w, h: partial, offset from the origin
    # two rects: a hard one and a weaker one overlapping it (Selection.add keeps the max)
    selection = [[8, 6, 10, 5, 255], [12, 9, 10, 8, 100]]

    out = krita_env.run_task(
        "canvas_io",
        {
            "width": w, "height": h, "bgra": b64(bgra), "region": region,
            "selection": selection, "layer_bgra": b64(layer[..., [2, 1, 0, 3]]),
            "rgb": b64(rgb), "alpha": b64(alpha), "placed_size": [pw, ph], "placed_at": [px, py],
        },
    )  # fmt: skip

    x, y, rw, rh = region
    assert out["image_shape"] == [rh, rw, 4]
    np.testing.assert_array_equal(unb64(out["image"], (rh, rw, 4)), rgba[y : y + rh, x : x + rw])

    assert out["no_mask"], "no selection must read as no mask"
    expected = np.zeros((h, w), np.uint8)
    expected[9:17, 12:22] = 100
    expected[6:11, 8:18] = 255
    mask = unb64(out["mask"], (rh, rw, 1))[..., 0]
    np.testing.assert_array_equal(mask, expected[y : y + rh, x : x + rw])
    assert out["selection_rect"] == [8, 6, 14, 11]

    part = layer[y : y + rh, x : x + rw].astype(np.int32)
    a = part[..., 3:4]
    for name, bg in (("over_black", 0), ("over_white", 255)):
        got = unb64(out[name], (rh, rw, 3)).astype(np.int32)
        want = (part[..., :3] * a + bg * (255 - a)) / 255
        assert np.abs(got - want).max() <= 1, name  # Qt's compositing rounds
        opaque = a[..., 0] == 255
        np.testing.assert_array_equal(got[opaque], part[..., :3][opaque])

    placed = unb64(out["placed"], (h, w, 4))
    inside = placed[py : py + ph, px : px + pw]
    shown = alpha > 0
    np.testing.assert_array_equal(inside[..., [2, 1, 0]][shown], rgb[shown])  # BGRA → RGB
    assert not inside[~shown].any(), "fully transparent pixels carry no colour"
    np.testing.assert_array_equal(inside[..., 3], alpha)
    outside = placed.copy()
    outside[py : py + ph, px : px + pw] = 0
    assert not outside.any(), "nothing may land outside the placed rectangle"

    names = [name for _, name in out["layers"]]
    assert names[0] == "placed" and "control" in names and "Background" in names
    assert "Selection Mask" not in names
