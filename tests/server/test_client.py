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
        assert client.wait(first.id, timeout=30).seeds == (1,)  # found among the set-aside events
        assert isinstance(client.models(timeout=30), Models)
        leftovers = client.events()  # the host's timer still sees everything else, in order
        assert isinstance(leftovers[0], Connected)
        steps = [e.step for e in leftovers if isinstance(e, Progress) and e.id == first.id]
        assert steps == sorted(steps) and steps[-1] == 2
        assert not any(isinstance(e, Result) for e in leftovers)


def test_connect_to_nothing_says_how_to_start_a_server() -> None:
    with pytest.raises(ConnectionFailed, match="sfumato serve"):
        Client("ws://127.0.0.1:9").connect(timeout=5)
