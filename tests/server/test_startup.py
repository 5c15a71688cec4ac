"""The server answers at once and loads models lazily, saying so."""

from __future__ import annotations

import time
from pathlib import Path

from sfumato.client import make_job
from sfumato.protocol import Progress, Result

from ..conftest import running_server
from .conftest import Peer, finished


def test_answers_before_any_model_loads_then_reports_loading(
    tmp_path: Path, model_cache: Path
) -> None:
    started = time.monotonic()
    with running_server(tmp_path, model_cache, "--no-preload") as s:
        peer = Peer(s.url)
        welcome = peer.hello()
        # Importing torch alone takes longer than this here: the engine is not imported yet.
        assert time.monotonic() - started < 5.0
        assert "tiny model" in welcome.notice
        job = make_job("generate", prompt="x", width=64, height=64, steps=2, seed=1)
        peer.send(job)
        messages = peer.until(finished(job.id))
        stages = [m.stage for m in messages if isinstance(m, Progress)]
        assert stages[0] == "loading" and stages[-1] == "denoise"
        assert isinstance(messages[-1], Result)
        peer.close()
