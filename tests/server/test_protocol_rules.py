"""The protocol's rules for hostile or careless clients, through a real server on loopback:
each gets a typed error naming the field and the fix, promptly, and the connection lives on."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.client import make_job
from sfumato.protocol import (
    Accepted,
    Array,
    Cancel,
    Control,
    ControlKind,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    ListModels,
    Models,
    Result,
)
from sfumato.protocol.codec import MAX_HEADER_DEPTH

from .conftest import Peer, finished, rgb

SMALL = {"width": 64, "height": 64, "steps": 2}


def still_serves(peer: Peer) -> None:
    peer.send(ListModels())
    assert isinstance(peer.until(lambda m: isinstance(m, Models))[-1], Models)


def with_raw(fields: dict, key: str, raw: bytes) -> bytes:
    """A msgpack map of ``fields`` plus ``key`` whose value is the raw msgpack ``raw``."""
    head = msgpack.packb(fields)
    assert 0x80 <= head[0] < 0x8F  # a fixmap: one more entry still fits
    return bytes([head[0] + 1]) + head[1:] + msgpack.packb(key) + raw


@settings(max_examples=8, deadline=None)
@given(st.integers(MAX_HEADER_DEPTH + 1, 3000), st.sampled_from(["width", "prompt", "loras"]))
def test_deep_nesting_in_any_field_is_a_bad_frame(server, depth: int, field: str) -> None:
    """Issue 17: a list ~1000 deep closed the connection with 1011 (internal error)."""
    peer = Peer(server.url)
    try:
        peer.hello()
        params = with_raw({}, field, b"\x91" * depth + b"\x01")
        frame = with_raw(
            {"v": 1, "type": "job", "id": "deep1", "task": "generate"}, "params", params
        )
        peer.send(frame)
        error = peer.recv()
        assert isinstance(error, Error) and error.code is ErrorCode.BAD_FRAME, error
        assert str(MAX_HEADER_DEPTH) in error.message
        if depth < 1000:  # deeper, msgpack itself stops before any header (so any id) exists
            assert error.id == "deep1"
        still_serves(peer)
    finally:
        peer.close()


def test_an_error_that_quotes_input_is_bounded(peer: Peer) -> None:
    """Issue 17: a 1 MiB `v` gave a 4 MiB bad_version error."""
    peer.send(msgpack.packb({"v": "9" * 900_000, "type": "models"}))
    error = peer.recv()
    assert isinstance(error, Error) and error.code is ErrorCode.BAD_VERSION
    assert len(error.message) < 600 and "Update the plugin or the server" in error.message
    peer.send(msgpack.packb({"v": 1, "type": "job", "id": "w1", "task": "generate",
                             "params": {"width": "w" * 900_000}}))  # fmt: skip
    error = peer.recv()
    assert (error.code, error.field, error.id) == (ErrorCode.BAD_FIELD, "params.width", "w1")
    assert len(error.message) < 600
    still_serves(peer)


def test_nil_expand_means_absent(peer: Peer) -> None:
    """Issue 17: `params.expand: nil` was "params.expand is required"."""
    header = {"v": 1, "type": "job", "id": f"nil-{uuid.uuid4().hex[:8]}", "task": "generate",
              "params": {"expand": None, "seed": None, "model": None, "loras": None, **SMALL}}  # fmt: skip
    peer.send(msgpack.packb(header))
    messages = peer.until(finished(header["id"]))
    assert isinstance(messages[0], Accepted) and isinstance(messages[-1], Result), messages


def test_no_denoising_step_is_refused_before_it_queues(peer: Peer) -> None:
    """Issues 9.19 / 17: steps × strength < 1 was accepted, waited in the queue, then failed
    with `unsupported` and no field. Now it is refused at once, behind a busy queue too."""
    busy = make_job("generate", prompt="x", width=64, height=64, steps=100)
    peer.send(busy)
    zero = make_job("refine", rgb(32, 32), prompt="x", steps=20, strength=0.0)
    small = make_job("refine", rgb(32, 32), prompt="x", steps=20, strength=0.04)
    peer.send(zero)
    peer.send(small)
    seen = peer.until(lambda m: isinstance(m, Error) and m.id == small.id)
    errors = {m.id: m for m in seen if isinstance(m, Error)}
    for job in (zero, small):
        error = errors[job.id]
        assert (error.code, error.field) == (ErrorCode.BAD_FIELD, "params.strength")
        assert "at least 0.05" in error.message
    assert not any(isinstance(m, Result) for m in seen)  # refused while the first still ran
    assert "at least 25" in errors[small.id].message  # or enough steps for that strength
    peer.send(Cancel(busy.id))
    peer.until(finished(busy.id))


def test_canny_preprocess_on_a_tiny_picture_works(peer: Peer) -> None:
    """Issue 17: a control picture of 32 px or less failed with an OpenCV assertion."""
    controls = [
        Control(ControlKind.CANNY, Array.from_numpy(rgb(h, w, seed=h)), preprocess=True)
        for h, w in ((8, 8), (32, 20))
    ]
    job = make_job("generate", prompt="x", seed=1, controls=controls, **SMALL)
    peer.send(job)
    result = peer.until(finished(job.id))[-1]
    assert isinstance(result, Result), result
    assert result.images[0].to_numpy().shape == (64, 64, 3)


def test_second_hello_names_the_field(peer: Peer) -> None:
    peer.send(Hello("again"))
    error = peer.recv()
    assert (error.code, error.field) == (ErrorCode.BAD_FIELD, "type")
    assert "type hello" in error.message and "new connection" in error.message
    still_serves(peer)


def test_fetch_of_a_queued_job_answers_its_position_then_its_end(server) -> None:
    """accepted.position counts the jobs that run before it, the running one included; a
    fetch of a queued or running job answers `accepted`, and its end follows."""
    a = Peer(server.url)
    client_id = a.hello().client_id
    b = Peer(server.url)
    try:
        first = make_job("generate", prompt="x", width=64, height=64, steps=30)
        second = make_job("generate", prompt="y", seed=2, **SMALL)
        a.send(first)
        a.send(second)
        accepted = [m for m in a.until(lambda m: getattr(m, "id", None) == second.id)]
        positions = {m.id: m.position for m in accepted if isinstance(m, Accepted)}
        assert positions[second.id] > positions[first.id]  # counted behind the first
        b.hello(client_id=client_id)
        b.send(Fetch(second.id))
        answer = b.until(lambda m: isinstance(m, Accepted) and m.id == second.id)[-1]
        assert answer.position >= 1  # `first` (queued or running) is ahead of it
        end = b.until(finished(second.id))[-1]
        assert isinstance(end, Result)
    finally:
        a.close()
        b.close()


def test_client_text_cannot_forge_log_lines(tmp_path: Path, model_cache: Path) -> None:
    """Issue 17: `hello.client` with a newline or escape sequences went to the log as is."""
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sfumato.cli", "serve", "--port", "0", "--no-preload",
             "--results", str(tmp_path / "results"), "--cache", str(model_cache)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            url = next(line for line in proc.stdout if line.startswith("Sfumato listening"))
            peer = Peer(url.split()[-1])
            forged = "2026-01-01 00:00:00,000 ERROR sfumato.server: FORGED"
            peer.send(Hello(f"evil\n{forged}\r\x1b[2J", version=f"1\n{forged}", client_id="x\ny"))
            assert peer.recv().TYPE == "welcome"
            still_serves(peer)
            peer.close()
            deadline = time.monotonic() + 20
            while "evil" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    text = log_path.read_text()
    assert "evil" in text  # the line was logged …
    assert not any(line.startswith(forged) for line in text.splitlines())  # … as one line
    assert "\x1b" not in text and "\r" not in text
    assert "evil\\n2026" in text  # escaped, still readable


def test_frame_too_large_and_refusals_name_the_job(tmp_path: Path, model_cache: Path) -> None:
    from ..conftest import running_server

    config = tmp_path / "server.toml"
    # room for a default 200² result (its bound is 120 000 pixel bytes + the header allowance),
    # not for a 200² inpaint's image and mask
    config.write_text("[limits]\nmax_message_bytes = 200000\nmax_image_side = 200\n")
    with running_server(
        tmp_path / "results", model_cache, "--config", str(config), "--no-preload"
    ) as s:
        peer = Peer(s.url)
        peer.hello()
        image, mask = np.zeros((200, 200, 4), np.uint8), np.zeros((200, 200, 1), np.uint8)
        big = make_job("inpaint", image, mask, prompt="x", id="big-1")
        peer.send(big)
        error = peer.recv()
        assert (error.code, error.id) == (ErrorCode.FRAME_TOO_LARGE, "big-1")
        # a job that leaves width/height out fits this server: 200 rounded down to 8
        header = {"v": 1, "type": "job", "id": "dflt", "task": "generate",
                  "params": {"steps": 1, "prompt": "x"}}  # fmt: skip
        peer.send(msgpack.packb(header))
        result = peer.until(finished("dflt"))[-1]
        assert isinstance(result, Result), result
        assert result.images[0].to_numpy().shape == (200, 200, 3)
        peer.close()
