"""A Client that notes the size of each message it sends: the live tests and benchmarks/live.py
check what travels (a repeat by hash, shared memory) by these sizes."""

from __future__ import annotations

from typing import Any

from sfumato import client as client_module
from sfumato.client import Client


class Counting(Client):
    """A Client that notes how many bytes each message it sends has."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sent: list[int] = []

    def _send(self, message: Any, place: Any = None) -> None:
        # Count what the real send encodes (encoding twice would place shm arrays twice).
        real = client_module.encode

        def counting(m: Any, p: Any = None) -> Any:
            chunks = real(m, p)
            self.sent.append(sum(c.nbytes for c in chunks))
            return chunks

        client_module.encode = counting
        try:
            super()._send(message, place)
        finally:
            client_module.encode = real
