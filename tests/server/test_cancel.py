"""Cancel a queued job and a running one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from sfumato.client import make_job
from sfumato.protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    ErrorCode,
    Hello,
    Progress,
    Result,
    decode_server_message,
    encode_bytes,
)
from sfumato.service import ServerConfig, SfumatoServer

from .conftest import Peer, finished


def test_cancel_running_job_stops_within_a_step(peer: Peer) -> None:
    # Long enough (150 steps of 128²) that the cancel always lands while it runs.
    job = make_job("generate", prompt="x", width=128, height=128, steps=150, seed=1)
    peer.send(job)
    seen = peer.until(lambda m: isinstance(m, Progress) and m.stage == "denoise" and m.step >= 2)
    peer.send(Cancel(job.id))
    rest = peer.until(finished(job.id))
    assert isinstance(rest[-1], Cancelled)
    last_step = max(m.step for m in seen + rest if isinstance(m, Progress))
    assert last_step < 150
    assert not any(isinstance(m, Result) for m in rest)


def test_cancel_queued_job_never_runs(peer: Peer) -> None:
    running = make_job("generate", prompt="x", width=64, height=64, steps=30, seed=1)
    queued = make_job("generate", prompt="y", width=64, height=64, steps=3, seed=1)
    peer.send(running)
    peer.send(queued)
    accepted = peer.until(lambda m: isinstance(m, Accepted) and m.id == queued.id)
    assert accepted[-1].position >= 1
    peer.send(Cancel(queued.id))
    messages = peer.until(finished(running.id))
    assert any(isinstance(m, Cancelled) and m.id == queued.id for m in messages)
    assert not any(
        getattr(m, "id", None) == queued.id and isinstance(m, Progress) for m in messages
    )
    assert isinstance(messages[-1], Result)


def test_cancel_unknown_job_is_not_found(peer: Peer) -> None:
    peer.send(Cancel("no-such-job"))
    error = peer.recv()
    assert (
        isinstance(error, Error) and error.code is ErrorCode.NOT_FOUND and error.id == "no-such-job"
    )


class _SeenCancel(threading.Event):
    """A job's cancel flag that notes how many steps the engine had reported when the server
    set it (on the event loop, as it does for a ``cancel`` message)."""

    def __init__(self, steps: list[int]) -> None:
        super().__init__()
        self.steps = steps
        self.at: int | None = None

    def set(self) -> None:
        if self.at is None:
            self.at = len(self.steps)
        super().set()


def test_a_running_job_ends_cancelled_at_most_one_step_after_the_server_sets_the_flag(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process, over a real websocket, on the real tiny engine: the steps the engine
    reported when the server acted on the cancel, against the steps it reported in all."""
    from sfumato.engine import Engine

    steps: list[int] = []  # every step the engine reported, on its thread
    real_run = Engine.run

    def counting_run(
        self: Engine, job: Any, *, on_step: Any, is_cancelled: Any, **more: Any
    ) -> Any:
        def step(done: int, total: int, preview: Any) -> None:
            steps.append(done)
            on_step(done, total, preview)

        return real_run(self, job, on_step=step, is_cancelled=is_cancelled, **more)

    monkeypatch.setattr(Engine, "run", counting_run)
    seen = _SeenCancel(steps)

    async def main() -> list[Any]:
        config = ServerConfig(port=0, results=tmp_path / "results", cache=model_cache,
                              preload=False, credentials=False)  # fmt: skip
        server = SfumatoServer(config)
        real_push = server.queue.push

        def push(entry: Any) -> int:
            entry.cancel = seen
            return real_push(entry)

        server.queue.push = push  # type: ignore[method-assign]
        await server.start()
        job = make_job("generate", prompt="x", width=128, height=128, steps=150, seed=1)
        got: list[Any] = []
        try:
            async with connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws:
                await ws.send(encode_bytes(Hello("test", "0")))
                decode_server_message(await asyncio.wait_for(ws.recv(), 60))
                await ws.send(encode_bytes(job))
                sent = False
                while not got or not isinstance(got[-1], (Result, Cancelled, Error)):
                    message = decode_server_message(await asyncio.wait_for(ws.recv(), 120))
                    got.append(message)
                    running = isinstance(message, Progress) and message.stage == "denoise"
                    if running and message.step >= 2 and not sent:
                        await ws.send(encode_bytes(Cancel(job.id)))
                        sent = True
        finally:
            await server.close()
        return got

    got = asyncio.run(main())
    assert isinstance(got[-1], Cancelled), got[-1]
    assert seen.at is not None and seen.at >= 2  # set after the client saw step 2
    assert len(steps) <= seen.at + 1, f"{len(steps)} steps ran; the cancel came at {seen.at}"
    reported = [m.step for m in got if isinstance(m, Progress) and m.stage == "denoise"]
    assert reported and max(reported) <= seen.at + 1
    assert not any(isinstance(m, Result) for m in got)
