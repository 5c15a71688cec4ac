"""Each task end to end through a real server on the tiny model."""

from __future__ import annotations

import json

import numpy as np

from sfumato.client import Client, make_job
from sfumato.protocol import Accepted, Progress, Result, Task

from .conftest import Peer, finished, rgb

SMALL = {"width": 64, "height": 64, "steps": 3}


def run(peer: Peer, job) -> list:
    peer.send(job)
    return peer.until(finished(job.id))


def test_generate_streams_accepted_progress_every_step_then_result(peer: Peer) -> None:
    job = make_job("generate", prompt="a red cube", seed=1, **SMALL)
    messages = run(peer, job)
    assert isinstance(messages[0], Accepted) and messages[0].id == job.id
    steps = [m.step for m in messages if isinstance(m, Progress) and m.stage == "denoise"]
    assert steps == [1, 2, 3]
    result = messages[-1]
    assert isinstance(result, Result)
    assert result.task is Task.GENERATE and result.tiny and result.seeds == (1,)
    pixels = result.images[0].to_numpy()
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert pixels.std() > 0  # an image, not a blank


def test_same_seed_same_image_and_other_seed_differs(peer: Peer) -> None:
    images = []
    for seed in (5, 5, 6):
        result = run(peer, make_job("generate", prompt="x", seed=seed, **SMALL))[-1]
        images.append(result.images[0].to_numpy())
    assert np.array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])


def test_variants_report_consecutive_seeds(peer: Peer) -> None:
    result = run(peer, make_job("generate", prompt="x", seed=10, variants=3, **SMALL))[-1]
    assert isinstance(result, Result)
    assert result.seeds == (10, 11, 12) and len(result.images) == 3
    assert not np.array_equal(result.images[0].to_numpy(), result.images[1].to_numpy())


def test_server_picks_and_reports_a_seed_when_none_given(peer: Peer) -> None:
    first = run(peer, make_job("generate", prompt="x", **SMALL))[-1]
    again = run(peer, make_job("generate", prompt="x", seed=first.seeds[0], **SMALL))[-1]
    assert np.array_equal(first.images[0].to_numpy(), again.images[0].to_numpy())


def test_refine_keeps_the_input_size_and_runs_steps_times_strength(peer: Peer) -> None:
    image = rgb(80, 96)
    outputs = {}
    for strength in (0.5, 1.0):
        messages = run(
            peer, make_job("refine", image, prompt="x", seed=3, steps=4, strength=strength)
        )
        totals = {m.total for m in messages if isinstance(m, Progress) and m.stage == "denoise"}
        assert totals == {int(4 * strength)}
        outputs[strength] = messages[-1].images[0]
    assert outputs[0.5].shape == (80, 96, 3)
    assert not np.array_equal(outputs[0.5].to_numpy(), outputs[1.0].to_numpy())


def test_inpaint_changes_only_the_masked_region(peer: Peer) -> None:
    image = rgb(64, 64, seed=2)
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[16:48, 16:48] = 255
    result = run(peer, make_job("inpaint", image, mask, prompt="x", seed=4, steps=4, strength=1.0))[
        -1
    ]
    out = result.images[0].to_numpy()
    keep = mask[:, :, 0] == 0
    assert np.array_equal(out[keep], image[keep])
    assert not np.array_equal(out[~keep], image[~keep])


def test_result_is_stored_with_its_facts_and_fetchable(server) -> None:
    with Client(server.url) as client:
        job = make_job("generate", prompt="stored lighthouse", seed=21, **SMALL)
        result = client.run(job, timeout=120)
        owner_dirs = [d for d in server.results.iterdir() if (d / job.id).is_dir()]
        assert len(owner_dirs) == 1
        folder = owner_dirs[0] / job.id
        meta = json.loads((folder / "result.json").read_text())
        assert meta["prompt"] == "stored lighthouse" and meta["seeds"] == [21]
        assert meta["model"] == result.model and meta["params"]["steps"] == 3
        assert set(meta["timings"]) >= {"queued", "load", "run"}
        assert (folder / "image-0.png").is_file()
        client.fetch(job.id)
        fetched = client.wait(job.id, timeout=30)
        assert np.array_equal(fetched.images[0].to_numpy(), result.images[0].to_numpy())
