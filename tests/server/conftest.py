"""A raw protocol peer for server tests: real websockets, bytes we choose."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from sfumato.client import DIRECT
from sfumato.protocol import (
    Hello,
    Message,
    ServerMessage,
    Welcome,
    decode_server_message,
    encode_bytes,
)

from ..ci import missing
from .procs import serve  # noqa: F401  (fixture: server processes whose logs are checked)


class Peer:
    def __init__(self, url: str, **kwargs: Any) -> None:
        self.ws: ClientConnection = connect(
            url, compression=None, max_size=None, **DIRECT, **kwargs
        )

    def send(self, message: Message | bytes | str) -> None:
        self.ws.send(message if isinstance(message, (bytes, str)) else encode_bytes(message))

    def recv(self, timeout: float = 60) -> ServerMessage:
        return decode_server_message(self.ws.recv(timeout=timeout))

    def hello(self, **kwargs: Any) -> Welcome:
        self.send(Hello("test", "0", **kwargs))
        welcome = self.recv()
        assert isinstance(welcome, Welcome), welcome
        return welcome

    def until(
        self, done: Callable[[ServerMessage], bool], timeout: float = 120
    ) -> list[ServerMessage]:
        """Messages up to and including the first for which ``done`` is true."""
        seen = []
        while True:
            message = self.recv(timeout)
            seen.append(message)
            if done(message):
                return seen

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def peer(server: Any) -> Iterator[Peer]:
    p = Peer(server.url)
    p.hello()
    yield p
    p.close()


def finished(job_id: str) -> Callable[[ServerMessage], bool]:
    return lambda m: getattr(m, "id", None) == job_id and m.TYPE in ("result", "error", "cancelled")


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def needs_shm() -> None:
    """Shared-memory inputs are Linux's /dev/shm: missing, the test fails in CI, else skips."""
    if not Path("/dev/shm").is_dir():
        missing("no /dev/shm (shared-memory inputs)", "run these tests on Linux")
