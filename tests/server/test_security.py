"""Safe by default: loopback bind, token, browser Origins, per-client results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sfumato.client import Client, ConnectionFailed, make_job
from sfumato.protocol import Error, ErrorCode, Fetch, ListModels, Models

from ..conftest import running_server
from .conftest import Peer


def test_refuses_non_loopback_bind_without_token(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sfumato.cli", "serve", "--host", "0.0.0.0", "--port", "0", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "without a token" in proc.stderr and "--token" in proc.stderr


def test_browser_origin_is_refused_unless_allowed(tmp_path: Path, model_cache: Path) -> None:
    allowed = "http://localhost:3000"
    with running_server(tmp_path, model_cache, "--allow-origin", allowed, "--no-preload") as s:
        with pytest.raises(InvalidStatus) as refused:
            Peer(s.url, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        ok = Peer(s.url, origin=allowed)
        ok.hello()
        ok.close()
        plain = Peer(s.url)  # native clients send no Origin
        plain.hello()
        plain.close()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, model_cache: Path):
    results = tmp_path_factory.mktemp("token-results")
    with running_server(results, model_cache, "--token", "s3cret") as s:
        yield s


@pytest.mark.parametrize("token", [None, "wrong"])
def test_hello_without_the_right_token_is_refused_and_closed(token_server, token) -> None:
    peer = Peer(token_server.url)
    kwargs = {} if token is None else {"token": token}
    from sfumato.protocol import Hello

    peer.send(Hello("test", **kwargs))
    error = peer.recv()
    assert (
        isinstance(error, Error) and error.code is ErrorCode.UNAUTHORIZED and error.field == "token"
    )
    with pytest.raises(ConnectionClosed):
        peer.send(ListModels())
        peer.recv(timeout=10)


def test_nothing_but_hello_before_authentication(token_server) -> None:
    peer = Peer(token_server.url)
    peer.send(ListModels())
    error = peer.recv()
    assert isinstance(error, Error) and error.code is ErrorCode.HELLO_REQUIRED
    peer.close()


def test_right_token_works_and_results_stay_with_their_token(token_server) -> None:
    with Client(token_server.url, token="s3cret") as client:
        job = make_job("generate", prompt="x", seed=1, width=64, height=64, steps=2)
        client.run(job, timeout=120)
        client_id = client.client_id
    peer = Peer(token_server.url)
    peer.hello(token="s3cret", client_id="someone-else")
    peer.send(Fetch(job.id))
    assert peer.recv().code is ErrorCode.NOT_FOUND
    peer.close()
    with Client(token_server.url, token="s3cret", client_id=client_id) as same:
        same.fetch(job.id)
        assert same.wait(job.id, timeout=30).id == job.id


def test_client_reports_unauthorized_clearly(token_server) -> None:
    with pytest.raises(ConnectionFailed, match="token"):
        Client(token_server.url, token="nope").connect()


def test_models_listing_never_shows_paths(peer: Peer) -> None:
    peer.send(ListModels())
    listing = peer.recv()
    assert isinstance(listing, Models)
    names = {m.name for m in listing.models}
    assert {"tiny-sd", "tiny-sdxl"} <= names
    assert not any("/" in m.description or "tiny:" in m.description for m in listing.models)
