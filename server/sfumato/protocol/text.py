"""A peer's text inside our own: quoted in error messages (bounded, escaped) and written to
the log (one line, escaped). Any value a peer sends may be huge, deep or full of control
characters; these are the only ways it goes back out."""

from __future__ import annotations

import reprlib
from typing import Any

ECHO_LIMIT = 200  # characters of a peer's value an error message may quote


class _Echo(reprlib.Repr):
    """``reprlib`` bounds depth and width without recursing past ``maxlevel``, so a list nested
    a thousand deep or a 1 MiB string costs a few hundred characters, never a RecursionError."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = ECHO_LIMIT
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 8

    def repr_bytes(self, value: bytes, level: int) -> str:
        head = repr(value[: ECHO_LIMIT // 4])
        return head if len(value) <= ECHO_LIMIT // 4 else f"{head}…({len(value)} bytes)"

    def repr_str(self, value: str, level: int) -> str:
        head = repr(value[:ECHO_LIMIT])
        return head if len(value) <= ECHO_LIMIT else f"{head}…({len(value)} characters)"


_ECHO = _Echo()


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A peer's value as an error message may quote it: a ``repr`` (control characters
    escaped) of at most ``limit`` characters, ending in "…" when cut."""
    text = _ECHO.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """A peer's name (a map key, say) cut to ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def loggable(text: str, limit: int = ECHO_LIMIT) -> str:
    """Client text made safe for one log line: every character that is not printable (newline,
    carriage return, escape sequences, other controls) is written as its escape, so a client
    can never start a forged log line or drive the terminal; cut to ``limit`` characters."""
    if text.isprintable():
        return clip(text, limit)
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 2])
    return clip(out, limit)
