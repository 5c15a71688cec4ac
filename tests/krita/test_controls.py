"""What the plugin puts on the wire, seen by a recording peer: control layers with their kind,
strength and preprocess flag, LoRAs, preview requests — sent by the real plugin code in the
real Krita. The peer speaks protocol v1 with the capabilities issue 3 adds, so these run
before the engine offers them; test_jobs.py repeats the control job on the real server."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.sync.server import ServerConnection, serve

from sfumato.protocol import (
    Accepted,
    Array,
    Hello,
    Job,
    ModelInfo,
    Progress,
    Result,
    Welcome,
    decode_client_message,
    encode_bytes,
)

from .conftest import KritaEnv

CAPABILITIES = (
    "generate", "refine", "inpaint", "outpaint", "upscale", "variants", "cancel", "control",
    "lora", "preview",
)  # fmt: skip


@dataclass
class Recorder:
    url: str = ""
    capabilities: tuple[str, ...] = CAPABILITIES
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, ws: ServerConnection) -> None:
        hello = decode_client_message(ws.recv(timeout=30))
        assert isinstance(hello, Hello)
        models = (ModelInfo("tiny-sd", "tiny-sd", "base"), ModelInfo("style", "tiny-sd", "lora"))
        ws.send(encode_bytes(Welcome("recorder", 1, self.capabilities, models, "tiny-sd")))
        for data in ws:
            job = decode_client_message(data)
            if not isinstance(job, Job):
                continue
            self.jobs.append(self.note(job))  # copies: the arrays view `data`
            ws.send(encode_bytes(Accepted(job.id, 0)))
            preview = Array.from_numpy(np.full((8, 8, 3), 77, np.uint8))
            ws.send(encode_bytes(Progress(job.id, 1, 2, preview=preview)))
            w, h = job.output_size()  # the protocol's one rule for it
            image = Array.from_numpy(np.full((h, w, 3), 200, np.uint8))
            seed = job.params.seed or 0
            ws.send(encode_bytes(Result(job.id, job.task, (image,), (seed,), "tiny-sd")))

    @staticmethod
    def note(job: Job) -> dict[str, Any]:
        return {
            "task": job.task.value,
            "params": job.params,
            "image": None if job.image is None else job.image.to_numpy().copy(),
            "controls": [
                {
                    "kind": c.kind.value,
                    "strength": c.strength,
                    "preprocess": c.preprocess,
                    "image": c.image.to_numpy().copy(),
                }
                for c in job.controls
            ],
        }


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    with serve(rec.handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
        rec.url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield rec
        server.shutdown()
    thread.join(timeout=10)


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def test_control_layers_loras_and_previews_reach_the_server(
    krita_env: KritaEnv, recorder: Recorder
) -> None:
    w, h = 96, 80
    lines = np.zeros((h, w, 4), np.uint8)  # a control map drawn on a transparent layer
    lines[10:70, 40:44] = (255, 255, 255, 255)  # a white vertical line (BGRA)
    photo = np.zeros((h, w, 4), np.uint8)
    photo[..., 0], photo[..., 3] = 90, 255  # opaque, blue-ish (BGRA: B = 90)
    photo[:, :20, 3] = 0  # a transparent strip: to detect from, it reads as white
    out = krita_env.run_task(
        "job",
        {"url": recorder.url, "width": w, "height": h, "mode": "generate", "prompt": "cat",
         "seed": 9, "loras": {"style": 0.5},
         "extra_layers": [{"name": "lines", "bgra": b64(lines)},
                          {"name": "photo", "bgra": b64(photo)}],
         "controls": [{"layer": "lines", "kind": "lineart", "strength": 0.6, "preprocess": False},
                      {"layer": "photo", "kind": "depth", "strength": 1.2, "preprocess": True}]},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    assert out["record"]["preview"] is not None
    (job,) = recorder.jobs
    assert job["task"] == "generate"
    params = job["params"]
    assert [(lo.name, lo.weight) for lo in params.loras] == [("style", 0.5)]
    assert params.preview_every > 0, "previews are asked for when the server offers them"
    assert (params.width, params.height, params.seed) == (w, h, 9)
    lineart, depth = job["controls"]
    assert (lineart["kind"], lineart["strength"], lineart["preprocess"]) == ("lineart", 0.6, False)
    assert (depth["kind"], depth["strength"], depth["preprocess"]) == ("depth", 1.2, True)
    expected_lines = np.zeros((h, w, 3), np.uint8)
    expected_lines[10:70, 40:44] = 255
    np.testing.assert_array_equal(lineart["image"], expected_lines)  # over black: a map
    expected_photo = np.zeros((h, w, 3), np.uint8)
    expected_photo[..., 2] = 90  # RGB: blue = 90
    expected_photo[:, :20] = 255  # transparent → white: a picture to detect from
    np.testing.assert_array_equal(depth["image"], expected_photo)
    history = out["after"]["history"]
    assert history[0]["controls"] == [["lineart", 0.6, False], ["depth", 1.2, True]]
    assert history[0]["loras"] == [["style", 0.5]]


def test_a_server_without_control_gets_no_control(krita_env: KritaEnv, recorder: Recorder) -> None:
    """Capabilities rule (protocol.md §3): the plugin refuses rather than send a field the
    server did not announce, and says what to do."""
    recorder.capabilities = ("generate", "refine", "inpaint")
    w, h = 64, 64
    with pytest.raises(AssertionError, match="does not offer control"):
        krita_env.run_task(
            "job",
            {"url": recorder.url, "width": w, "height": h, "mode": "generate",
             "extra_layers": [{"name": "lines", "bgra": b64(np.zeros((h, w, 4), np.uint8))}],
             "controls": [{"layer": "lines", "kind": "canny", "strength": 1.0,
                           "preprocess": True}]},
        )  # fmt: skip
    assert recorder.jobs == []


@pytest.mark.parametrize(("mode", "size"), [("expand", (96, 80)), ("upscale", (128, 96))])
def test_expand_and_upscale_resize_the_document(
    krita_env: KritaEnv, recorder: Recorder, mode: str, size: tuple[int, int]
) -> None:
    w, h = 64, 48
    picture = np.zeros((h, w, 4), np.uint8)
    picture[..., 1], picture[..., 3] = 150, 255
    out = krita_env.run_task(
        "job",
        {"url": recorder.url, "width": w, "height": h, "bgra": b64(picture), "mode": mode,
         "expand": 16},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    (job,) = recorder.jobs
    assert job["task"] == {"expand": "outpaint", "upscale": "upscale"}[mode]
    after = out["after"]
    assert (after["width"], after["height"]) == size
    (layer,) = next(n for n in after["tree"] if n["name"] == "Sfumato")["children"]
    pixels = np.frombuffer(base64.b64decode(layer["pixels"]), np.uint8).reshape(size[1], size[0], 4)
    covered = np.ones(pixels.shape[:2], bool)
    if mode == "expand":  # the new margins only: the original picture is left as it was
        covered[16 : 16 + h, 16 : 16 + w] = False
        assert (pixels[~covered] == 0).all(), "nothing is painted over the original"
    assert (pixels[covered] == (200, 200, 200, 255)).all(), "the result covers the rest"
    background = next(n for n in after["tree"] if n["name"] == "Background")
    bg = np.frombuffer(base64.b64decode(background["pixels"]), np.uint8)
    bg = bg.reshape(size[1], size[0], 4)
    if mode == "expand":  # the old picture moved by the margin
        np.testing.assert_array_equal(bg[16 : 16 + h, 16 : 16 + w], picture)
    else:  # scaled with the document: still green
        assert (bg[..., 1] == 150).all()


def test_a_linear_light_image_goes_over_the_wire_as_srgb_and_comes_back_in_its_profile(
    krita_env: KritaEnv, recorder: Recorder
) -> None:
    """Issue 18 item 2 through the whole plugin: a refine of an 8-bit linear-sRGB image. Its
    stored grey 128 is what Krita shows as sRGB 188, so 188 goes on the wire; the peer's
    sRGB 200 result is stored near linear 147 (200 in sRGB is 0.578 in linear light)."""
    w, h = 64, 64
    grey = np.full((h, w, 4), (128, 128, 128, 255), np.uint8)
    out = krita_env.run_task(
        "job",
        {"url": recorder.url, "width": w, "height": h, "bgra": b64(grey), "mode": "refine",
         "profile": "sRGB-elle-V2-g10.icc"},
    )  # fmt: skip
    assert out["record"]["state"] == "done", out["record"]["message"]
    (job,) = recorder.jobs
    sent = job["image"]
    assert sent.shape == (h, w, 4)
    assert (np.abs(sent[..., :3].astype(int) - 188) <= 1).all(), sent[0, 0]
    (layer,) = next(n for n in out["after"]["tree"] if n["name"] == "Sfumato")["children"]
    stored = np.frombuffer(base64.b64decode(layer["pixels"]), np.uint8).reshape(h, w, 4)
    assert (np.abs(stored[..., :3].astype(int) - 147) <= 1).all(), stored[0, 0]
