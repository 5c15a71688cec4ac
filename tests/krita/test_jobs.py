"""Jobs end to end: a document in the real Krita → the plugin's model, canvas and controller →
a real ``sfumato serve`` on the tiny model → layers in the document."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from ..conftest import RunningServer
from .conftest import KritaEnv


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def pixels(node: dict[str, Any], w: int, h: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(node["pixels"]), np.uint8).reshape(h, w, 4)


def projection(state: dict[str, Any]) -> np.ndarray:
    h, w = state["height"], state["width"]
    return np.frombuffer(base64.b64decode(state["projection"]), np.uint8).reshape(h, w, 4)


def group(state: dict[str, Any], name: str) -> dict[str, Any]:
    found = [n for n in state["tree"] if n["type"] == "grouplayer" and n["name"] == name]
    assert found, f"no group {name!r} in {[n['name'] for n in state['tree']]}"
    return found[0]


def picture(w: int, h: int, seed: int = 1) -> np.ndarray:
    """An opaque BGRA test picture with structure (so refine/inpaint see an image)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def test_generate_in_a_selection_is_clipped_to_it(
    krita_env: KritaEnv, krita_server: RunningServer
) -> None:
    w, h = 160, 128
    sel = [60, 40, 30, 20]
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "mode": "generate",
         "prompt": "a red  lighthouse", "seed": 5, "variants": 2, "selection": [[*sel, 255]]},
    )  # fmt: skip
    record, after = out["record"], out["after"]
    assert record["state"] == "done", record["message"]
    assert record["region"] == [28, 8, 94, 84]  # the selection plus 32 px of context, clamped
    layers = group(after, "Sfumato")["children"]  # bottom first
    assert [n["name"] for n in layers] == [
        "a red lighthouse · seed 6",
        "a red lighthouse · seed 5",
    ]
    assert [n["visible"] for n in layers] == [False, True], "variants are hidden siblings"
    x, y, sw, sh = sel
    for layer in layers:
        px = pixels(layer, w, h)
        inside = np.zeros((h, w), bool)
        inside[y : y + sh, x : x + sw] = True
        assert (px[..., 3][inside] == 255).all()
        assert not px[~inside].any(), "pixels outside the selection must be transparent"
        assert px[inside][..., :3].std() > 0, "the generated picture arrived"
    (entry,) = after["history"]
    assert entry["prompt"] == "a red  lighthouse" and entry["seeds"] == [5, 6]
    assert entry["layers"] == [layers[1]["name"], layers[0]["name"]]
    assert entry["mode"] == "generate" and entry["selection"] is True


def test_inpaint_changes_only_masked_pixels_and_keeps_soft_edges(
    krita_env: KritaEnv, krita_server: RunningServer
) -> None:
    w, h = 128, 96
    image = picture(w, h)
    selection = [[40, 30, 30, 24, 255], [30, 20, 50, 44, 90]]  # hard core, soft rim
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "bgra": b64(image),
         "mode": "inpaint", "strength": 1.0, "selection": selection},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    before, after = projection(out["before"]), projection(out["after"])
    mask = np.zeros((h, w), np.uint8)
    mask[20:64, 30:80] = 90
    mask[30:54, 40:70] = 255
    np.testing.assert_array_equal(after[mask == 0], before[mask == 0])
    changed = (after != before).any(axis=-1)
    assert changed[mask == 255].mean() > 0.9
    (layer,) = group(out["after"], "Sfumato")["children"]
    np.testing.assert_array_equal(pixels(layer, w, h)[..., 3], mask)  # alpha = the selection


def test_background_lands_below_every_layer(
    krita_env: KritaEnv, krita_server: RunningServer
) -> None:
    w, h = 96, 64
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "mode": "background",
         "prompt": "sky", "extra_layers": [{"name": "figure", "bgra": b64(picture(w, h, 2))}]},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    tree = out["after"]["tree"]
    assert [n["name"] for n in tree] == ["Sfumato background", "Background", "figure"]
    (layer,) = tree[0]["children"]
    assert layer["name"] == "sky · seed 5"
    assert (pixels(layer, w, h)[..., 3] == 255).all()
    assert "cover it completely" in out["notice"]  # the opaque figure hides it: say so


def test_without_a_selection_the_whole_canvas_is_refined(
    krita_env: KritaEnv, krita_server: RunningServer
) -> None:
    w, h = 72, 64
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "bgra": b64(picture(w, h)),
         "mode": "refine", "strength": 0.6, "prompt": ""},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    assert out["record"]["region"] == [0, 0, w, h]
    (layer,) = group(out["after"], "Sfumato")["children"]
    assert layer["name"] == "refine · seed 5"
    assert (pixels(layer, w, h)[..., 3] == 255).all()


def test_cancel_stops_the_job_and_adds_no_layer(
    krita_env: KritaEnv, krita_server: RunningServer
) -> None:
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": 256, "height": 256, "mode": "generate",
         "steps": 150, "cancel": True},
    )  # fmt: skip
    assert out["record"]["state"] == "cancelled", out["record"]
    assert [n["name"] for n in out["after"]["tree"]] == ["Background"]
    assert out["after"]["history"] == []


def needs(out_caps: list[str], capability: str) -> None:
    assert capability in out_caps, f"the server does not announce {capability!r}: {out_caps}"


@pytest.fixture(scope="module")
def capabilities(krita_server: RunningServer) -> list[str]:
    from sfumato.client import Client

    with Client(krita_server.url, name="probe") as client:
        assert client.welcome is not None
        return list(client.welcome.capabilities)


def test_expand_grows_the_canvas(
    krita_env: KritaEnv, krita_server: RunningServer, capabilities: list[str]
) -> None:
    needs(capabilities, "outpaint")
    w, h, e = 64, 64, 16
    image = picture(w, h)
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "bgra": b64(image),
         "mode": "expand", "expand": e},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    after = out["after"]
    assert (after["width"], after["height"]) == (w + 2 * e, h + 2 * e)
    (layer,) = group(after, "Sfumato")["children"]
    alpha = pixels(layer, w + 2 * e, h + 2 * e)[..., 3].copy()
    assert (alpha[e : e + h, e : e + w] == 0).all()  # nothing painted over the original
    alpha[e : e + h, e : e + w] = 255
    assert (alpha == 255).all()  # the new margins, all of them
    background = next(n for n in after["tree"] if n["name"] == "Background")
    moved = pixels(background, w + 2 * e, h + 2 * e)[e : e + h, e : e + w]
    np.testing.assert_array_equal(moved, image)  # the old picture moved with the margins
    seen = np.frombuffer(base64.b64decode(after["projection"]), np.uint8)
    seen = seen.reshape(h + 2 * e, w + 2 * e, 4)[e : e + h, e : e + w]
    np.testing.assert_array_equal(seen, image)  # and what the artist sees there is unchanged


def test_upscale_doubles_the_canvas(
    krita_env: KritaEnv, krita_server: RunningServer, capabilities: list[str]
) -> None:
    needs(capabilities, "upscale")
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": 64, "height": 48, "bgra": b64(picture(64, 48)),
         "mode": "upscale", "strength": 0.5, "steps": 4},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    assert (out["after"]["width"], out["after"]["height"]) == (128, 96)
    (layer,) = group(out["after"], "Sfumato")["children"]
    assert (pixels(layer, 128, 96)[..., 3] == 255).all()


def test_control_layer_with_detection_on_the_real_server(
    krita_env: KritaEnv, krita_server: RunningServer, capabilities: list[str]
) -> None:
    needs(capabilities, "control")
    w, h = 64, 64
    edges = np.zeros((h, w, 4), np.uint8)
    edges[16:48, 16:48] = 255
    out = krita_env.run_task(
        "job",
        {"url": krita_server.url, "width": w, "height": h, "mode": "generate",
         "extra_layers": [{"name": "edges", "bgra": b64(edges)}],
         "controls": [{"layer": "edges", "kind": "canny", "strength": 0.8, "preprocess": True}]},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    assert out["after"]["history"][0]["controls"] == [["canny", 0.8, True]]
