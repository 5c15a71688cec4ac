"""Large results: a server sends no message over the ``max_message_bytes`` it announces, so a
job whose result could not fit is refused at admission (``result_too_large``, naming the field
and how far to go); a result that still outgrows it ends its job as that error (never a hang);
and the client decodes exactly what the server announced."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.server import ServerConnection, serve

from sfumato.client import Client, ConnectionFailed, JobFailed, make_job
from sfumato.imageio import encode_png
from sfumato.protocol import (
    Array,
    Error,
    ErrorCode,
    Job,
    JobParams,
    Limits,
    Result,
    Task,
    Welcome,
    decode_client_message,
    encode,
    encode_bytes,
)
from sfumato.protocol.messages import PNG_EXTRA_BYTES, RESULT_HEADER_BYTES
from sfumato.registry import Registry
from sfumato.service.admission import Refusal, check_result_fits, result_bytes
from sfumato.service.journal import Journal, recover
from sfumato.service.store import ResultStore

from ..protocol.strategies import FAST
from .limited import limited_server, plant

MIB = 1024 * 1024


def generate(width: int, height: int, variants: int = 1, files: bool = False, **kw: object) -> Job:
    return Job(uuid.uuid4().hex, Task.GENERATE, JobParams(
        prompt=str(kw.get("prompt", "p")), width=width, height=height, steps=1,
        variants=variants, files=files))  # fmt: skip


def real_result(job: Job, level: int, rng: np.random.Generator) -> Result:
    """The result message the server would build: noise images (incompressible, deflate's
    worst case) at the job's output size, and their PNGs when it asks for files."""
    width, height = job.output_size()
    images = [
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(job.params.variants)
    ]
    files = tuple(encode_png(i, level) for i in images) if job.params.files else ()
    seeds = tuple(2**32 - 1 - n for n in range(job.params.variants))
    return Result(job.id, job.task, tuple(Array.from_numpy(i) for i in images), seeds,
                  "a-model-name-of-some-length", prompt=job.params.prompt,
                  timings={"queued": 1.0, "load": 2.0, "run": 3.0, "store": 4.0, "total": 10.0},
                  files=files)  # fmt: skip


@settings(FAST, max_examples=40)
@given(
    width=st.integers(1, 40).map(lambda n: n * 8),
    height=st.integers(1, 40).map(lambda n: n * 8),
    variants=st.integers(1, 4),
    files=st.booleans(),
    level=st.sampled_from((0, 1, 9)),
    prompt=st.text(max_size=4000),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_bound_holds_for_the_real_encoded_result(
    width: int, height: int, variants: int, files: bool, level: int, prompt: str, seed: int
) -> None:
    job = Job(uuid.uuid4().hex, Task.GENERATE, JobParams(
        prompt=prompt, width=width, height=height, variants=variants, files=files))  # fmt: skip
    result = real_result(job, level, np.random.default_rng(seed))
    sent = sum(c.nbytes for c in encode(result))
    # The manifest a signed PNG carries is not in these unsigned files: it has its own allowance.
    assert sent <= result_bytes(job) - (PNG_EXTRA_BYTES * variants if files else 0)


@settings(FAST, max_examples=200)
@given(
    width=st.integers(1, 512).map(lambda n: n * 8),
    height=st.integers(1, 512).map(lambda n: n * 8),
    variants=st.integers(1, 16),
    files=st.booleans(),
    limit=st.integers(RESULT_HEADER_BYTES, 512 * MIB),
)
def test_admission_refuses_exactly_what_cannot_fit_and_its_advice_fits(
    width: int, height: int, variants: int, files: bool, limit: int
) -> None:
    job = generate(width, height, variants, files)
    if result_bytes(job) <= limit:
        check_result_fits(job, limit)
        return
    with pytest.raises(Refusal) as caught:
        check_result_fits(job, limit)
    refusal = caught.value
    assert refusal.code is ErrorCode.RESULT_TOO_LARGE
    assert (
        refusal.message.startswith(f"{refusal.field}: ") and "max_message_bytes" in refusal.message
    )
    if refusal.field == "params.variants":  # "at most N variants": N fits, N + 1 does not
        most = int(refusal.message.split("at most ")[1].split()[0])
        assert 1 <= most < variants
        check_result_fits(generate(width, height, most, files), limit)
        with pytest.raises(Refusal):
            check_result_fits(generate(width, height, most + 1, files), limit)
    elif refusal.field == "params.files":
        assert variants == 1 or result_bytes(generate(width, height, 1, files)) > limit
        check_result_fits(generate(width, height, variants, False), limit)
    else:  # neither fewer variants alone nor leaving the files off helps: a smaller size
        assert refusal.field == "params.width" and "smaller size" in refusal.message
        assert result_bytes(generate(width, height, 1, files)) > limit
        assert result_bytes(generate(width, height, variants, False)) > limit


def test_a_real_server_refuses_at_admission_and_then_serves_what_fits(
    tmp_path: Path, model_cache: Path
) -> None:
    limit = 2 * MIB
    config = {"max_message_bytes": limit}
    with limited_server(tmp_path, model_cache, limits=config) as srv, Client(srv.url) as client:
        assert client.welcome is not None
        assert client.welcome.limits.max_message_bytes == limit
        too_many = make_job("generate", prompt="p", width=256, height=256, steps=1,
                            variants=6, files=True)  # fmt: skip
        with pytest.raises(JobFailed) as caught:
            client.run(too_many, timeout=60)
        error = caught.value.error
        expected = (ErrorCode.RESULT_TOO_LARGE, "params.variants", too_many.id)
        assert (error.code, error.field, error.id) == expected
        most = int(error.message.split("at most ")[1].split()[0])
        assert most == 3 and "limits.max_message_bytes" in error.message
        assert f"job {too_many.id}: generate on" not in srv.log_text()  # never ran
        # The advice holds on the real thing: that many run, signed files and all.
        fits = make_job("generate", prompt="p", width=256, height=256, steps=1,
                        variants=most, files=True, seed=5)  # fmt: skip
        result = client.run(fits, timeout=240)
    assert len(result.images) == most == len(result.files)
    sent = sum(c.nbytes for c in encode(result))
    assert sent <= result_bytes(fits) <= limit
    rows = 256 * (256 * 3 + 1)
    assert all(len(f) <= rows + rows // 1000 + PNG_EXTRA_BYTES for f in result.files)


def test_a_stored_result_too_large_for_todays_limit_ends_its_fetch_as_an_error(
    tmp_path: Path, model_cache: Path
) -> None:
    """A result stored under a larger limit (a restart with a smaller one): fetching it gets
    result_too_large for that job, promptly, and the connection keeps working."""
    client_id = uuid.uuid4().hex
    plant(tmp_path / "results", client_id, "big-job", side=256)  # 192 KiB of pixels
    plant(tmp_path / "results", client_id, "small-job", side=64)
    limits = {"max_message_bytes": 128 * 1024}
    with limited_server(tmp_path, model_cache, limits=limits) as srv:
        with Client(srv.url, client_id=client_id, name="large") as client:
            client.fetch("big-job")
            with pytest.raises(JobFailed) as caught:
                client.wait("big-job", timeout=30)
            error = caught.value.error
            assert (error.code, error.id) == (ErrorCode.RESULT_TOO_LARGE, "big-job")
            assert "max_message_bytes" in error.message and "fewer variants" in error.message
            client.fetch("small-job")
            assert client.wait("small-job", timeout=30).images[0].width == 64
        assert "the result of job 'big-job' is" in srv.log_text()


@contextmanager
def lying_server(announced: int, result: Result) -> Iterator[str]:
    """A websocket peer that announces ``announced`` max_message_bytes, then answers any job
    with ``result`` whatever its size: what a broken or misconfigured server would do."""

    def handler(ws: ServerConnection) -> None:
        ws.recv()  # hello
        welcome = Welcome("1", 1, ("generate",), default_model="m", client_id="cid",
                          limits=Limits(max_message_bytes=announced))  # fmt: skip
        ws.send(encode_bytes(welcome))
        for data in ws:
            job = decode_client_message(data)  # type: ignore[arg-type]
            ws.send(encode_bytes(Result(job.id, Task.GENERATE, result.images, (1,), "m")))

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=10)


@pytest.mark.parametrize("side", [32, 40, 52, 64])
def test_the_client_decodes_what_the_server_announced_and_ends_the_job_on_more(side: int) -> None:
    """Up to the announced limit a result decodes; past it (up to the transport's cap at twice
    the limit) the job it names ends as result_too_large; past the cap the connection closes
    (1009) and the wait ends as a lost connection. Never a wait that does not end."""
    image = Array.from_numpy(np.zeros((side, side, 3), np.uint8))
    big = Result("x", Task.GENERATE, (image,), (1,), "m")
    announced = 4096  # 32² × 3 = 3072 bytes fit with the header; 40², 52² fit under 2 × 4096
    size = len(encode_bytes(big))
    with lying_server(announced, big) as url, Client(url, name="large") as client:
        job = make_job("generate", prompt="p", width=64, height=64)
        if size <= announced:
            assert client.run(job, timeout=20).images[0].width == side
            return
        if size > 2 * announced:
            with pytest.raises(ConnectionFailed, match=r"1009|too big"):
                client.run(job, timeout=20)
            return
        with pytest.raises(JobFailed) as caught:
            client.run(job, timeout=20)
    error = caught.value.error
    assert (error.code, error.id) == (ErrorCode.RESULT_TOO_LARGE, job.id)
    assert "max_message_bytes" in error.message


def test_a_journaled_job_whose_result_no_longer_fits_ends_as_interrupted(tmp_path: Path) -> None:
    """After a restart with a smaller limit, a journaled job that could not be sent is not run
    for nothing: it ends as interrupted, saying why; one that still fits is queued again."""
    registry = Registry.load(None)
    journal, store = Journal(tmp_path), ResultStore(tmp_path)
    owner = "c" * 24
    big = make_job("generate", id="big", prompt="p", width=512, height=512, variants=4)
    small = make_job("generate", id="small", prompt="p", width=64, height=64)
    journal.write(owner, big, "tiny-sd")
    journal.write(owner, small, "tiny-sd")
    one = make_job("generate", prompt="p", width=512, height=512)
    limits = Limits(max_message_bytes=result_bytes(one))  # one variant of big still fits
    entries = recover(journal, store, registry, registry.default, limits)
    assert [e.job.id for e in entries] == ["small"]
    ended = store.ended(owner, "big")
    assert isinstance(ended, Error) and ended.code is ErrorCode.INTERRUPTED
    assert "params.variants" in ended.message and "at most 1 variant)" in ended.message
