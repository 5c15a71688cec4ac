"""Issue 18 item 2 in real Krita: an image in a non-sRGB profile (linear sRGB, ACEScg) or
depth (float) is sent as the sRGB the artist sees, and results written back show the sRGB
values that came from the server. Other colour models are refused with what to do."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from .conftest import KritaEnv

W, H = 8, 4
LINEAR = "sRGB-elle-V2-g10.icc"
ACESCG = "ACEScg-elle-V4-g10.icc"
SRGB = "sRGB-elle-V2-srgbtrc.icc"
# A result from the server (sRGB RGB): a grey, an orange, a dark blue and a near-white.
RESULT = np.array([[188, 188, 188], [230, 120, 40], [20, 40, 90], [250, 250, 245]], np.uint8)


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def unb64(text: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype).reshape(shape)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def raw_grey(depth: str, linear: float) -> np.ndarray:
    """A document's raw pixels, all one grey in linear light (alpha opaque)."""
    if depth == "U8":
        return np.full((H, W, 4), (round(linear * 255),) * 3 + (255,), np.uint8)
    return np.full((H, W, 4), (linear, linear, linear, 1.0), np.float32)


@pytest.fixture(scope="module")
def seen(krita_env: KritaEnv) -> dict[str, Any]:
    result = np.resize(RESULT, (H * W, 3)).reshape(H, W, 3)
    cases = [
        (LINEAR, "U8", 128 / 255), (ACESCG, "U8", 128 / 255), (LINEAR, "F32", 0.5),
        (SRGB, "U8", 128 / 255),
    ]  # fmt: skip
    payload = {
        "cases": [
            {"profile": profile, "depth": depth, "width": W, "height": H,
             "raw": b64(raw_grey(depth, value)), "result_rgb": b64(result)}
            for profile, depth, value in cases
        ]
    }  # fmt: skip
    out = krita_env.run_task("profiles", payload)
    out["result"] = result
    out["values"] = [value for _, _, value in cases]
    return out


def test_a_linear_light_grey_is_sent_as_the_srgb_the_artist_sees(seen: dict[str, Any]) -> None:
    """Linear 128 is what Krita shows as sRGB ≈ 188; before, 128 went to the model."""
    for case, value in zip(seen["cases"][:3], seen["values"][:3], strict=True):
        sent = unb64(case["sent"], np.uint8, (H, W, 4))
        expected = round(float(linear_to_srgb(np.array(value))) * 255)
        assert abs(expected - 188) <= 1  # the arithmetic of the example
        spread = np.abs(sent[..., :3].astype(int) - expected)
        # ACEScg's primaries and white differ: a neutral stays near neutral, within 3
        assert spread.max() <= (3 if case["profile"] == ACESCG else 1), (
            case["profile"],
            sent[0, 0],
        )
        assert (sent[..., 3] == 255).all()


def test_srgb_documents_are_sent_untouched(seen: dict[str, Any]) -> None:
    case = seen["cases"][3]
    sent = unb64(case["sent"], np.uint8, (H, W, 4))
    assert (sent[..., :3] == 128).all() and (sent[..., 3] == 255).all()
    layer = unb64(case["layer_raw"], np.uint8, (H, W, 4))
    np.testing.assert_array_equal(layer[..., 2::-1][..., :3], seen["result"])  # BGRA, exact


def test_a_result_shows_the_servers_srgb_values_in_any_profile(seen: dict[str, Any]) -> None:
    for case in seen["cases"]:
        artist = unb64(case["artist_sees"], np.uint8, (H, W, 4))[..., [2, 1, 0]]  # BGRA → RGB
        error = np.abs(artist.astype(int) - seen["result"].astype(int))
        assert error.max() <= 2, (case["profile"], case["depth"], artist[0, :4])
        back = unb64(case["read_back"], np.uint8, (H, W, 4))[..., :3]
        assert np.abs(back.astype(int) - seen["result"].astype(int)).max() <= 2
        assert case["documents_open"] == 1, "only the image: the temporary ones were closed"


def test_the_layer_holds_the_documents_own_encoding(seen: dict[str, Any]) -> None:
    """Written in the document's space, not the sRGB bytes as they came: a linear grey
    188 is stored near 128 (U8) or 0.5 (float)."""
    linear_u8 = unb64(seen["cases"][0]["layer_raw"], np.uint8, (H, W, 4))
    assert abs(int(linear_u8[0, 0, 0]) - 128) <= 1, linear_u8[0, 0]
    linear_f32 = unb64(seen["cases"][2]["layer_raw"], np.float32, (H, W, 4))
    assert abs(float(linear_f32[0, 0, 0]) - 0.5) < 0.01, linear_f32[0, 0]


def test_other_colour_models_are_refused_with_what_to_do(seen: dict[str, Any]) -> None:
    assert "this image is CMYKA/U8" in seen["cmyk"]
    assert "Convert Image Color Space" in seen["cmyk"] and "RGB/Alpha" in seen["cmyk"]
