"""Bad input gets a typed error naming the field; the connection and the server keep working."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from sfumato.client import make_job
from sfumato.protocol import Array, Error, ErrorCode, Job, JobParams, ListModels, Models, Task

from ..conftest import running_server
from .conftest import Peer


def header(**fields) -> bytes:
    return msgpack.packb({"v": 1, **fields})


def image_job_bytes(dtype: str, shape: list[int], nbytes: int, task: str = "refine") -> bytes:
    ref = {"dtype": dtype, "shape": shape, "offset": 0}
    return header(type="job", id="j1", task=task, inputs={"image": ref}) + b"\0" * nbytes


CASES = [
    pytest.param(b"\xc1\xc1", ErrorCode.BAD_FRAME, None, id="not-msgpack"),
    pytest.param(msgpack.packb([1, 2]), ErrorCode.BAD_FRAME, None, id="not-a-map"),
    pytest.param(header(type="dance"), ErrorCode.UNKNOWN_TYPE, "type", id="unknown-type"),
    pytest.param(msgpack.packb({"v": 9, "type": "models"}), ErrorCode.BAD_VERSION, "v", id="version"),
    pytest.param(
        header(type="job", id="j1", task="generate", params={"width": "wide"}),
        ErrorCode.BAD_FIELD, "params.width", id="wrong-type",
    ),
    pytest.param(
        header(type="job", id="j1", task="generate", params={"widht": 64}),
        ErrorCode.BAD_FIELD, "params.widht", id="unknown-field",
    ),
    pytest.param(
        header(type="job", id="j1", task="generate", params={"width": 100}),
        ErrorCode.BAD_FIELD, "params.width", id="not-multiple-of-8",
    ),
    pytest.param(image_job_bytes("float64", [8, 8, 3], 8 * 8 * 3 * 8), ErrorCode.BAD_ARRAY, "inputs.image.dtype", id="dtype"),
    pytest.param(image_job_bytes("uint8", [8, 8, 3], 10), ErrorCode.BAD_ARRAY, "inputs.image", id="short-payload"),
    pytest.param(image_job_bytes("float32", [8, 8, 3], 8 * 8 * 3 * 4), ErrorCode.BAD_ARRAY, "inputs.image", id="image-not-uint8"),
    pytest.param(image_job_bytes("uint8", [8, 8, 2], 8 * 8 * 2), ErrorCode.BAD_ARRAY, "inputs.image", id="two-channels"),
    pytest.param(header(type="job", id="j1", task="refine"), ErrorCode.BAD_FIELD, "inputs.image", id="missing-image"),
    pytest.param(header(type="job", id="../etc", task="generate"), ErrorCode.BAD_FIELD, "id", id="path-id"),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "code", "field"), CASES)
def test_bad_frame_gets_typed_error_and_connection_survives(peer: Peer, frame, code, field) -> None:
    peer.send(frame)
    error = peer.recv()
    assert isinstance(error, Error)
    assert error.code is code, error
    if field is not None:
        assert error.field == field
        assert field.split(".")[-1] in error.message
    peer.send(ListModels())
    assert isinstance(peer.recv(), Models)


def test_job_errors_name_the_job(peer: Peer) -> None:
    peer.send(header(type="job", id="named", task="generate", params={"steps": 0}))
    error = peer.recv()
    assert isinstance(error, Error) and error.id == "named" and error.field == "params.steps"


def test_mask_that_does_not_match_the_image(peer: Peer) -> None:
    job = make_job(
        "inpaint", np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 1), np.uint8), prompt="x"
    )
    peer.send(job)
    error = peer.recv()
    assert (
        isinstance(error, Error)
        and error.code is ErrorCode.BAD_ARRAY
        and error.field == "inputs.mask"
    )
    assert "64×64" in error.message and "64×32" in error.message


def test_unknown_model(peer: Peer) -> None:
    peer.send(make_job("generate", prompt="x", model="no-such-model", width=64, height=64))
    error = peer.recv()
    assert isinstance(error, Error) and error.code is ErrorCode.UNKNOWN_MODEL
    assert "no-such-model" in error.message and "tiny-sd" in error.message


def test_duplicate_job_id(peer: Peer) -> None:
    job = make_job("generate", prompt="x", width=64, height=64, steps=20)
    peer.send(job)
    peer.send(job)
    messages = peer.until(lambda m: isinstance(m, Error))
    assert messages[-1].code is ErrorCode.DUPLICATE_ID and messages[-1].id == job.id


def test_text_frame(peer: Peer) -> None:
    peer.send("hello?")
    error = peer.recv()
    assert isinstance(error, Error) and error.code is ErrorCode.BAD_FRAME


def test_limits(tmp_path: Path, model_cache: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        "[limits]\nmax_message_bytes = 100000\nmax_image_side = 128\nmax_queued_jobs = 2\n"
    )
    with running_server(
        tmp_path / "results", model_cache, "--config", str(config), "--no-preload"
    ) as s:
        peer = Peer(s.url)
        welcome = peer.hello()
        assert welcome.limits.max_message_bytes == 100000 and welcome.limits.max_image_side == 128

        big = Job(
            "big", Task.REFINE, JobParams(), Array.from_numpy(np.zeros((180, 180, 4), np.uint8))
        )
        peer.send(big)  # 129,600 bytes: over max_message_bytes, under the transport's hard cap
        error = peer.recv()
        assert isinstance(error, Error) and error.code is ErrorCode.FRAME_TOO_LARGE

        wide = make_job("refine", np.zeros((16, 200, 3), np.uint8), prompt="x")
        peer.send(wide)
        error = peer.recv()
        assert error.code is ErrorCode.IMAGE_TOO_LARGE and error.field == "inputs.image"

        peer.send(make_job("generate", prompt="x", width=256, height=64))
        assert peer.recv().code is ErrorCode.IMAGE_TOO_LARGE

        jobs = [make_job("generate", prompt="x", width=64, height=64, steps=50) for _ in range(3)]
        for job in jobs:
            peer.send(job)
        errors = peer.until(lambda m: isinstance(m, Error))
        assert errors[-1].code is ErrorCode.QUEUE_FULL and errors[-1].id == jobs[2].id
        peer.send(ListModels())
        assert isinstance(peer.until(lambda m: isinstance(m, Models))[-1], Models)
        peer.close()
