"""Conditioning end to end through a real server: controls, LoRAs, tiling, previews,
outpaint and upscale, and the refusals that name the field."""

from __future__ import annotations

import dataclasses

import numpy as np

from sfumato.client import make_job
from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    Error,
    ErrorCode,
    LoraRef,
    Progress,
    Result,
    Task,
    Tile,
)

from .conftest import Peer, finished, rgb

SMALL = {"width": 64, "height": 64, "steps": 4}


def run(peer: Peer, job) -> list:
    peer.send(job)
    return peer.until(finished(job.id))


def image_of(messages: list) -> np.ndarray:
    result = messages[-1]
    assert isinstance(result, Result), result
    return result.images[0].to_numpy()


def test_welcome_announces_conditioning_and_lists_the_parts(server) -> None:
    fresh = Peer(server.url)
    welcome = fresh.hello()
    fresh.close()
    for capability in ("control", "lora", "tile", "preview", "outpaint", "upscale"):
        assert capability in welcome.capabilities
    by_name = {m.name: m for m in welcome.models}
    assert by_name["tiny-sd-depth"].kind == "controlnet"
    assert by_name["tiny-sd-depth"].control == "depth"
    assert by_name["sd15-normal"].control == "normal" and by_name["sd15-normal"].family == "sd15"
    assert by_name["tiny-sd-style"].kind == "lora"
    assert by_name["taesd"].kind == "preview"


def test_depth_pass_lora_tiling_and_previews_in_one_job(peer: Peer) -> None:
    depth = np.tile(np.linspace(1, 4, 64, dtype=np.float32), (64, 1))[:, :, None]
    background = np.zeros((64, 64, 1), np.uint8)
    background[:8] = 255
    control = Control(ControlKind.DEPTH, Array.from_numpy(depth), Array.from_numpy(background))
    plain = image_of(run(peer, make_job("generate", prompt="x", seed=3, **SMALL)))
    job = make_job("generate", prompt="x", seed=3, loras=(LoraRef("tiny-sd-style", 0.8),),
                   tile=Tile.XY, preview_every=2, **SMALL)  # fmt: skip
    job = dataclasses.replace(job, controls=(control,))
    messages = run(peer, job)
    conditioned = image_of(messages)
    assert conditioned.shape == plain.shape and not np.array_equal(conditioned, plain)
    previews = {
        m.step: m.preview.to_numpy()
        for m in messages
        if isinstance(m, Progress) and m.preview is not None
    }
    assert sorted(previews) == [2, 4]
    assert all(p.shape == (64, 64, 3) and p.dtype == np.uint8 for p in previews.values())


def test_outpaint_and_upscale_sizes(peer: Peer) -> None:
    image = rgb(48, 64)
    grown = run(peer, make_job("outpaint", image, prompt="x", seed=1, steps=3, strength=1.0,
                               expand=(8, 8, 8, 8)))  # fmt: skip
    out = image_of(grown)
    assert out.shape == (64, 80, 3)
    assert np.array_equal(out[8 + 16 : 8 + 48 - 16, 8 + 16 : 8 + 64 - 16], image[16:-16, 16:-16])
    bigger = image_of(run(peer, make_job("upscale", image, prompt="x", seed=1, steps=4,
                                         strength=0.3, scale=2)))  # fmt: skip
    assert bigger.shape == (96, 128, 3)
    assert grown[-1].task is Task.OUTPAINT


def test_unknown_lora_is_refused_before_queueing_with_its_field(peer: Peer) -> None:
    job = make_job("generate", prompt="x", loras=(LoraRef("tiny-sd-style"), LoraRef("nope")),
                   **SMALL)  # fmt: skip
    peer.send(job)
    error = peer.recv()
    assert isinstance(error, Error) and error.id == job.id
    assert error.code is ErrorCode.UNKNOWN_MODEL and error.field == "params.loras[1].name"
    assert "'nope'" in error.message
    assert error.message.startswith("params.loras[1].name: ") and "tiny-sd-style" in error.message
