"""Issue 10 item 1 in real Krita: a connection that breaks while a job runs no longer fails
the job. The plugin (its Plugin object, bridge thread and retry timer, as the extension runs
them) reconnects with the same client id and fetches the job; the peer answers the fetch
with the result (it lands as layers) or with ``interrupted`` (the job says it was lost to a
server restart). A recording peer speaks protocol v1, so the break comes exactly mid-job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from websockets.sync.server import ServerConnection, serve

from sfumato.protocol import (
    Accepted,
    Array,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    ModelInfo,
    Progress,
    Result,
    Task,
    Welcome,
    decode_client_message,
    encode_bytes,
)

from .conftest import KritaEnv

CAPS = ("generate", "refine", "inpaint", "variants", "cancel", "fetch", "preview")


@dataclass
class Breaker:
    """Connection 1: accepts the job, reports a step, then drops the connection. Later
    connections: answer each fetch with ``answer`` ("result" or "interrupted")."""

    answer: str = "result"
    url: str = ""
    hellos: list[Hello] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def handle(self, ws: ServerConnection) -> None:
        hello = decode_client_message(ws.recv(timeout=30))
        assert isinstance(hello, Hello)
        self.hellos.append(hello)
        models = (ModelInfo("tiny-sd", "tiny-sd", "base"),)
        welcome = Welcome("breaker", 1, CAPS, models, "tiny-sd", client_id="krita-client-1")
        ws.send(encode_bytes(welcome))
        for data in ws:
            message = decode_client_message(data)
            if isinstance(message, Job):
                self.jobs.append(message.id)
                self.sizes[message.id] = message.output_size()
                ws.send(encode_bytes(Accepted(message.id, 0)))
                ws.send(encode_bytes(Progress(message.id, 1, 4)))
                ws.close()  # the server goes away mid-job
                return
            if isinstance(message, Fetch):
                self.fetches.append(message.id)
                ws.send(encode_bytes(self.end(message.id)))

    def end(self, job_id: str) -> Result | Error:
        if self.answer == "interrupted":
            return Error(ErrorCode.INTERRUPTED, "the server restarted", id=job_id)
        w, h = self.sizes[job_id]
        image = Array.from_numpy(np.full((h, w, 3), 120, np.uint8))
        return Result(job_id, Task.GENERATE, (image,), (5,), "tiny-sd")


@pytest.fixture
def breaker() -> Iterator[Breaker]:
    peer = Breaker()
    with serve(peer.handle, "127.0.0.1", 0, compression=None, max_size=None) as server:
        peer.url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield peer
        server.shutdown()
    thread.join(timeout=10)


def test_a_job_running_when_the_connection_breaks_is_fetched_after_the_reconnect(
    krita_env: KritaEnv, breaker: Breaker
) -> None:
    out = krita_env.run_task("reconnect", {"url": breaker.url, "width": 72, "height": 64})
    job_id = out["job_id"]
    assert out["record"]["state"] == "done", out
    assert breaker.jobs == [job_id], "sent once, never again"
    assert breaker.fetches == [job_id], "fetched once, after the reconnect"
    assert [h.client_id for h in breaker.hellos] == [None, "krita-client-1"]  # same identity
    assert out["connects"] == 2
    (layer,) = next(n for n in out["after"]["tree"] if n["name"] == "Sfumato")["children"]
    assert layer["name"] == "a test · seed 5"
    (entry,) = out["after"]["history"]
    assert entry["job_id"] == job_id and entry["seeds"] == [5]
    messages = [message for _, _, message in out["seen"]]
    assert any("once the server is back the plugin fetches its result" in m for m in messages)
    assert any(f"reconnected; fetching the result of job {job_id}" in m for m in messages)
    assert not any("this job ran: run it again" in m for m in messages), messages  # the old end
    assert "" not in messages[2:], "the job's message stays while the plugin reconnects"
    statuses = [status for _, status, _ in out["seen"]]
    assert any("trying again every 5 s" in s for s in statuses), statuses


def test_a_job_the_restarted_server_lost_says_to_run_it_again(
    krita_env: KritaEnv, breaker: Breaker
) -> None:
    breaker.answer = "interrupted"
    out = krita_env.run_task("reconnect", {"url": breaker.url, "width": 64, "height": 64})
    assert out["record"]["state"] == "lost", out
    assert "lost to a server restart — run it again" in out["record"]["message"]
    assert "fetch" not in out["record"]["message"]
    assert [n["name"] for n in out["after"]["tree"]] == ["Background"]  # nothing was added
    assert out["after"]["history"] == []
