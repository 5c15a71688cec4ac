"""A bounded fuzz run against a real server on loopback (issue 17, item 6): a few thousand
seeded hostile frames (fuzzframes.py), every one answered, no internal error, the server alive
and its canary jobs — one running during the storm, one after — fine."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sfumato.client import Client, make_job
from sfumato.protocol import Result

from .fuzzframes import FUZZ_LIMITS, fire
from .limited import limited_server

SEED = 2026  # fixed: a failure reproduces with the same frames (fuzzframes.frames(SEED, n))


@pytest.mark.slow
def test_fuzzed_frames_are_all_answered_and_canaries_live(
    tmp_path: Path, model_cache: Path
) -> None:
    with limited_server(tmp_path, model_cache, {}, FUZZ_LIMITS) as server:
        canaries: list[object] = []

        def canary(name: str) -> None:
            try:
                with Client(server.url, name=f"canary-{name}") as client:
                    job = make_job("generate", prompt=name, seed=1, width=64, height=64, steps=2)
                    canaries.append(client.run(job, timeout=240))
            except Exception as exc:  # reported below
                canaries.append(exc)

        during = threading.Thread(target=canary, args=("during",))
        during.start()
        tally = fire(server.url, SEED, 3000, per_connection=500)
        during.join(timeout=300)
        canary("after")

        assert tally.sent == 3000
        assert tally.unanswered == 0, tally
        assert tally.internal == 0, tally.internal_messages
        assert tally.closed_1011 == 0 and tally.unexpected_closes == 0, tally
        assert server.alive()
        assert len(canaries) == 2 and all(isinstance(c, Result) for c in canaries), canaries
        log = server.log_text()
        assert "Traceback" not in log and "Task exception was never retrieved" not in log
