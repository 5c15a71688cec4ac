"""Review decisions in ``OUT_DIR/review.sqlite``: one row per output (pick / reject / none, a
star, a comment) and an append-only history of every change.

Why SQLite: a reviewer's afternoon must survive a reload, a killed process or a crashed
laptop. Each decision is one transaction in WAL mode with ``synchronous=FULL``, so a change
the page saw acknowledged is on disk; nothing is cached in the web server.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..protocol import SfumatoError

DB_NAME = "review.sqlite"
MAX_COMMENT = 4000  # characters; a comment is a note, not a document
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    key TEXT PRIMARY KEY,
    decision TEXT NOT NULL DEFAULT 'none' CHECK (decision IN ('none', 'pick', 'reject')),
    star INTEGER NOT NULL DEFAULT 0 CHECK (star IN (0, 1)),
    comment TEXT NOT NULL DEFAULT '',
    reviewer TEXT NOT NULL DEFAULT '',
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    decision TEXT NOT NULL,
    star INTEGER NOT NULL,
    comment TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class ReviewError(SfumatoError, ValueError):
    """Bad review input; ``field`` names what to fix (the web API returns it with a 400)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Decision(str, Enum):
    NONE = "none"
    PICK = "pick"
    REJECT = "reject"


@dataclass(frozen=True)
class Review:
    """One output's review state; an output never reviewed is ``Review.blank(key)``."""

    key: str
    decision: Decision = Decision.NONE
    star: bool = False
    comment: str = ""
    reviewer: str = ""
    updated: str = ""

    @classmethod
    def blank(cls, key: str) -> Review:
        return cls(key)

    @property
    def reviewed(self) -> bool:
        return self.decision is not Decision.NONE or self.star or bool(self.comment)

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "decision": self.decision.value, "star": self.star,
                "comment": self.comment, "reviewer": self.reviewer, "updated": self.updated}  # fmt: skip


def parse_change(
    data: object, known: set[str]
) -> tuple[str, Decision | None, bool | None, str | None]:
    """A change as the page sends it (``{"key", "decision"?, "star"?, "comment"?}``), checked:
    each error names the field and what it may be."""
    if not isinstance(data, dict):
        raise ReviewError('send a JSON object like {"key": "...", "decision": "pick"}', "body")
    extra = sorted(set(data) - {"key", "decision", "star", "comment"})
    if extra:
        raise ReviewError(
            f"unknown field {extra[0]!r}; a change has key, decision, star, comment",
            extra[0] or "body",
        )
    key = data.get("key")
    if not isinstance(key, str) or key not in known:
        raise ReviewError(
            f"key {key!r} is not an output of this batch; use a key from /api/items", "key"
        )
    decision = data.get("decision")
    if decision is not None:
        try:
            decision = Decision(decision)
        except ValueError:
            raise ReviewError(
                f"decision {decision!r} is not one of none, pick, reject", "decision"
            ) from None
    star = data.get("star")
    if star is not None and not isinstance(star, bool):
        raise ReviewError(f"star must be true or false, got {star!r}", "star")
    comment = data.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise ReviewError("comment must be text", "comment")
        if len(comment) > MAX_COMMENT:
            raise ReviewError(
                f"comment is {len(comment)} characters; keep it under {MAX_COMMENT}", "comment"
            )
    if decision is None and star is None and comment is None:
        raise ReviewError("a change needs at least one of decision, star, comment", "body")
    return key, decision, star, comment


class Decisions:
    """The review file of one batch folder. Thread-safe: the web server's request threads
    share one connection behind a lock (SQLite serialises writers anyway)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ReviewError(
                f"{self.path} was written by a newer Sfumato (schema {version}); upgrade sfumato",
                "review.sqlite",
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Decisions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def all(self) -> dict[str, Review]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, decision, star, comment, reviewer, updated FROM decisions"
            ).fetchall()
        return {row[0]: _review(row) for row in rows}

    def get(self, key: str) -> Review:
        with self._lock:
            row = self._db.execute(
                "SELECT key, decision, star, comment, reviewer, updated FROM decisions WHERE key=?",
                (key,),
            ).fetchone()
        return _review(row) if row else Review.blank(key)

    def change(
        self,
        key: str,
        *,
        decision: Decision | None = None,
        star: bool | None = None,
        comment: str | None = None,
        reviewer: str = "",
    ) -> Review:
        """Apply one change in one transaction (the row and its history line together)."""
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT key, decision, star, comment, reviewer, updated FROM decisions "
                    "WHERE key=?",
                    (key,),
                ).fetchone()
                old = _review(row) if row else Review.blank(key)
                new = Review(
                    key,
                    old.decision if decision is None else decision,
                    old.star if star is None else star,
                    old.comment if comment is None else comment,
                    reviewer,
                    at,
                )
                values = (key, new.decision.value, int(new.star), new.comment, reviewer, at)
                self._db.execute(
                    "INSERT INTO decisions (key, decision, star, comment, reviewer, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                    "decision=excluded.decision, star=excluded.star, comment=excluded.comment, "
                    "reviewer=excluded.reviewer, updated=excluded.updated",
                    values,
                )
                self._db.execute(
                    "INSERT INTO history (key, decision, star, comment, reviewer, at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    values,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def history(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, decision, star, comment, reviewer, at FROM history ORDER BY id"
            ).fetchall()
        return [
            {"key": k, "decision": d, "star": bool(s), "comment": c, "reviewer": r, "at": a}
            for k, d, s, c, r, a in rows
        ]


def _review(row: tuple) -> Review:
    key, decision, star, comment, reviewer, updated = row
    return Review(key, Decision(decision), bool(star), comment, reviewer, updated)
