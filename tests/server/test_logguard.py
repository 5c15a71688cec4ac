"""Logging that cannot flood the disk: repeats collapse, the first of each kind still shows."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
from collections.abc import Iterator

import pytest

from sfumato.service.logguard import RepeatFilter
from sfumato.service.server import _quiet_exceptions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sink() -> Iterator[tuple[io.StringIO, Clock]]:
    stream, clock = io.StringIO(), Clock()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatFilter(10.0, clock, burst=3))
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield stream, clock
    root.removeHandler(handler)
    root.setLevel(old)


def test_a_repeated_message_is_written_once_then_counted(sink) -> None:
    stream, clock = sink
    log = logging.getLogger("sfumato.test")
    for n in range(1000):
        log.error("accept failed on socket %d", n)
    assert stream.getvalue().count("\n") == 3 and "socket 2" in stream.getvalue()  # the burst
    log.warning("another kind of message")  # other messages are not held back
    assert "another kind" in stream.getvalue()
    clock.now += 11
    log.error("accept failed on socket %d", 1000)
    last = stream.getvalue().splitlines()[-1]
    assert "socket 1000" in last and "[repeated 997 more times in 10 s]" in last


def test_descriptor_exhaustion_on_accept_logs_one_line_not_tracebacks(sink) -> None:
    stream, _ = sink
    loop = asyncio.new_event_loop()
    try:
        for _ in range(500):
            context = {
                "message": "socket.accept() out of system resource",
                "exception": OSError(errno.EMFILE, "Too many open files"),
            }
            _quiet_exceptions(loop, context)
    finally:
        loop.close()
    text = stream.getvalue()
    assert text.count("\n") == 3 and "Traceback" not in text
    assert "out of file descriptors" in text and "max_connections" in text


def test_other_loop_errors_still_reach_the_log(sink) -> None:
    stream, _ = sink
    loop = asyncio.new_event_loop()
    try:
        _quiet_exceptions(loop, {"message": "something else broke", "exception": KeyError("k")})
    finally:
        loop.close()
    assert "something else broke" in stream.getvalue() and "KeyError" in stream.getvalue()
