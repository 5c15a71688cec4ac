"""The threaded client: waiting on one job never loses another's events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.client import (
    Client,
    Connected,
    ConnectionFailed,
    ConnectionState,
    check_url,
    make_job,
)
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


_URL_FIX = "ws://HOST:PORT"


def _malformed_urls() -> st.SearchStrategy[str]:
    """URLs no connection can be tried on: a port out of range or not a number, another
    scheme, no scheme at all, a broken IPv6 host, no host."""
    host = "127.0.0.1"
    bad_port = st.one_of(st.integers(min_value=65536), st.integers(max_value=-1))
    letters = st.text(st.sampled_from("abcxyz!$()*,;="), min_size=1, max_size=6)
    scheme = st.from_regex(r"\A[a-z][a-z0-9+]{0,5}\Z").filter(lambda s: s not in ("ws", "wss"))
    return st.one_of(
        bad_port.map(lambda p: f"ws://{host}:{p}"),
        letters.map(lambda t: f"ws://{host}:{t}"),
        scheme.map(lambda s: f"{s}://{host}:8746"),
        st.text(max_size=30).filter(lambda t: "://" not in t),
        st.sampled_from(["ws://[::1:8746", "ws://[fe80::1", "ws://:8746", "ws://", "ws:///x"]),
    )


@settings(max_examples=150, deadline=None)
@given(url=_malformed_urls())
def test_a_malformed_url_is_named_with_the_form_that_works(url: str) -> None:
    """Every malformed URL (port 99999 among them) is a ConnectionFailed that quotes it and
    shows the form to use, never a bare ValueError, and nothing is left half-connected."""
    client = Client(url)
    with pytest.raises(ConnectionFailed) as failed:
        client.connect(timeout=2)
    assert repr(url) in str(failed.value) and _URL_FIX in str(failed.value)
    assert client.state is ConnectionState.DISCONNECTED and client._ws is None


def test_port_99999_says_what_is_wrong() -> None:
    with pytest.raises(
        ConnectionFailed,
        match=r"'ws://127\.0\.0\.1:99999' is not valid: its port must be a number from 1 to 65535",
    ):
        Client("ws://127.0.0.1:99999").connect(timeout=2)
    assert check_url("  ws://127.0.0.1:8746/ ") == "ws://127.0.0.1:8746/"  # spaces dropped
