"""Logging that cannot flood the disk: the same message repeated is written once per window.

At the descriptor limit the server once wrote 2–3 MB of EMFILE tracebacks a second (issue 17).
A failure that repeats is one fact; the log should say it once, then how often it recurred.
The filter sits on the handlers, so it covers every logger (asyncio's and websockets' too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 1024  # distinct messages tracked at once; beyond this the oldest are forgotten
BURST = 20  # records of one kind let through per window before the rest are counted


@dataclass
class _Seen:
    first: float
    passed: int = 1
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Lets the first ``burst`` records of a kind through in each ``window`` seconds, drops the
    rest, and tells how many it dropped on the next record of that kind after the window.

    A kind is the logger, the level, the message template (not its arguments, which often
    carry a changing number) and the exception type. The burst keeps ordinary lines (a job
    done, a client connected) while a failure repeating thousands of times a second costs
    a few lines per window."""

    def __init__(
        self, window: float, clock: Callable[[], float] = time.monotonic, burst: int = BURST
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.burst = burst
        self._seen: dict[tuple[str, int, str, str], _Seen] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window <= 0:
            return True
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, str(record.msg)[:200], exc)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen.first < self.window:
            if seen.passed < self.burst:
                seen.passed += 1
                return True
            seen.suppressed += 1
            return False
        if seen is not None and seen.suppressed:
            record.msg = (
                f"{record.msg} [repeated {seen.suppressed} more times in {self.window:g} s]"
            )
        if len(self._seen) >= MAX_KEYS:
            self._seen.pop(next(iter(self._seen)))
        self._seen.pop(key, None)
        self._seen[key] = _Seen(now)
        return True


def install(window: float) -> RepeatFilter | None:
    """Put one :class:`RepeatFilter` on every handler of the root logger (once)."""
    root = logging.getLogger()
    existing = [f for h in root.handlers for f in h.filters if isinstance(f, RepeatFilter)]
    if existing:
        existing[0].window = window
        return existing[0]
    if not root.handlers:
        return None
    guard = RepeatFilter(window)
    for handler in root.handlers:
        handler.addFilter(guard)
    return guard
