"""The threaded client: waiting on one job never loses another's events."""

from __future__ import annotations

import pytest

from sfumato.client import Client, Connected, ConnectionFailed, make_job
from sfumato.protocol import Models, Progress, Result


def test_waiting_for_one_job_keeps_the_others_events(server) -> None:
    with Client(server.url) as client:
        first = make_job("generate", prompt="a", seed=1, width=64, height=64, steps=2)
        second = make_job("generate", prompt="b", seed=2, width=64, height=64, steps=2)
        client.submit(first)
        client.submit(second)
        assert client.wait(second.id, timeout=120).seeds == (2,)  # first finished meanwhile
        seen: list = []
        result = client.wait(
            first.id, timeout=30, on_event=seen.append
        )  # from the set-aside events
        assert result.seeds == (1,)
        steps = [e.step for e in seen if isinstance(e, Progress) and e.stage == "denoise"]
        assert steps == [1, 2]  # its progress was kept, in order, while we waited on the other
        assert isinstance(client.models(timeout=30), Models)
        leftovers = client.events()  # the host's timer sees everything nobody waited for
        assert isinstance(leftovers[0], Connected)
        assert not any(isinstance(e, Result) for e in leftovers)


def test_connect_to_nothing_says_how_to_start_a_server() -> None:
    with pytest.raises(ConnectionFailed, match="sfumato serve"):
        Client("ws://127.0.0.1:9").connect(timeout=5)
