"""The job journal: each accepted job is written durably before the client hears `accepted`,
so no restart (a crash, SIGKILL, a graceful stop) loses it.

Layout, inside the result store: ``<results>/<owner>/.journal/<job id>.job`` is one JSON header
line (format, sequence number, job id, model, byte length and CRC-32 of the message) followed
by the job's wire message, input arrays included. It is written under a temporary name,
fsync'd, renamed into place, and its folder fsync'd. The entry is removed once the job's
terminal record (its result, or the record of its error or cancel) is stored, so after a
restart every entry left names a job that has not ended: :func:`recover` queues it again, in
the order jobs were accepted, or ends it as ``interrupted`` when it cannot run.

A job is run again after at most :data:`MAX_RESTARTS` restarts: a job that itself kills the
server (out of memory, say) must not hold it in a crash loop. The count lives in a tiny
sidecar, ``<job id>.restarts``, so a large entry is never rewritten.

Live jobs (``params.live``, service/live.py) are never written here: the router accepts them
without an entry, so a restart does not run them again — their host has long sent a newer edit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..protocol import Error, ErrorCode, Job, Limits, ProtocolError, decode_client_message, encode
from ..registry import Registry
from .admission import Refusal, admit
from .fair_queue import JobEntry
from .store import ResultStore, StoreError, disk_problem, fsync_dir

log = logging.getLogger("sfumato.journal")
JOURNAL = ".journal"
FORMAT = 1
MAX_RESTARTS = 3


@dataclass(frozen=True)
class Pending:
    """One journal entry found at start; ``problem`` says why it cannot be read, if so."""

    owner: str
    job_id: str
    seq: int
    model: str = ""
    message: bytes = b""
    problem: str = ""


class Journal:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._last_seq = 0

    def _folder(self, owner: str) -> Path:
        return self.root / owner / JOURNAL

    def _next_seq(self) -> int:
        # Wall-clock based so that order holds across restarts; never repeats within one.
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return self._last_seq

    def write(self, owner: str, job: Job, model: str) -> None:
        """Keep ``job`` durably. Blocking: call it off the event loop. Raises
        :class:`StoreError` when the disk cannot keep it (the job must then be refused)."""
        chunks = encode(job)
        crc, size = 0, 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            size += chunk.nbytes
        header = {
            "format": FORMAT, "seq": self._next_seq(), "id": job.id, "model": model,
            "bytes": size, "crc32": crc,
            "accepted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }  # fmt: skip
        folder = self._folder(owner)
        try:
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                fsync_dir(folder.parent)
                fsync_dir(self.root)
            fd, tmp = tempfile.mkstemp(prefix=f".{job.id}-", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(json.dumps(header).encode() + b"\n")
                    for chunk in chunks:
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, folder / f"{job.id}.job")
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            fsync_dir(folder)
        except OSError as exc:
            raise StoreError(disk_problem(exc, f"could not keep job {job.id!r}")) from None

    def remove(self, owner: str, job_id: str) -> None:
        """The job has ended and its terminal record is stored. Blocking. A failure is only
        logged: recovery finds the terminal record and drops the entry then."""
        folder = self._folder(owner)
        try:
            removed = False
            for name in (f"{job_id}.job", f"{job_id}.restarts"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / name).unlink()
                    removed = True
            if removed:  # a live job was never written (live.py): nothing to make durable
                fsync_dir(folder)
        except OSError as exc:
            log.warning("job %s: could not remove its journal entry: %s", job_id, exc)

    def restarts(self, owner: str, job_id: str) -> int:
        """How often this job was queued again after a restart."""
        try:
            return int((self._folder(owner) / f"{job_id}.restarts").read_text())
        except (OSError, ValueError):
            return 0

    def count_restart(self, owner: str, job_id: str) -> None:
        """Record one more restart before the job runs again (durably: a crash loop counts)."""
        path = self._folder(owner) / f"{job_id}.restarts"
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            f.write(str(self.restarts(owner, job_id) + 1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def pending(self) -> list[Pending]:
        """Every entry left, oldest first. Unreadable ones come back with a ``problem``."""
        found: list[Pending] = []
        for owner_dir in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            folder = owner_dir / JOURNAL
            if owner_dir.name.startswith(".") or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.name.startswith("."):  # a write cut short: never acknowledged
                    with contextlib.suppress(OSError):
                        path.unlink()
                elif path.suffix == ".job":
                    found.append(_read_entry(owner_dir.name, path))
        found.sort(key=lambda p: (p.seq, p.owner, p.job_id))
        if found:
            self._last_seq = max(self._last_seq, found[-1].seq)
        return found


def _read_entry(owner: str, path: Path) -> Pending:
    job_id = path.stem
    try:
        data = path.read_bytes()
        line, _, body = data.partition(b"\n")
        header = json.loads(line)
        seq = int(header["seq"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Pending(
            owner, job_id, 0, problem=f"its header cannot be read ({type(exc).__name__})"
        )
    if header.get("format") != FORMAT:
        return Pending(owner, job_id, seq, problem=f"it has an unknown format {header['format']!r}")
    if len(body) != header.get("bytes") or zlib.crc32(body) != header.get("crc32"):
        return Pending(owner, job_id, seq, problem="it is truncated or corrupt")
    return Pending(owner, job_id, seq, str(header.get("model", "")), body)


def recover(
    journal: Journal, store: ResultStore, registry: Registry, default_model: str, limits: Limits
) -> list[JobEntry]:
    """Read the journal at start: the jobs to run again, oldest first (connection 0: no live
    connection submitted them; the queue's lanes are per owner anyway). Entries that cannot run are
    ended with ``interrupted`` terminal records, so a ``fetch`` answers that, not ``not_found``.
    Blocking: call it before serving."""
    entries: list[JobEntry] = []
    for pending in journal.pending():
        owner, job_id = pending.owner, pending.job_id
        if store.exists(owner, job_id) or store.ended(owner, job_id) is not None:
            journal.remove(owner, job_id)  # it ended just before the stop; nothing to redo
            continue
        why = pending.problem and f"its journal entry is damaged: {pending.problem}"
        job: Job | None = None
        if not why:
            try:
                message = decode_client_message(pending.message, limits)
                assert isinstance(message, Job) and message.id == job_id
                job = message
                model = admit(job, registry, default_model, limits.max_message_bytes).name
            except ProtocolError as exc:
                why = f"it no longer passes this server's checks ({exc.message})"
            except Refusal as refusal:
                why = refusal.message
            except AssertionError:
                why = "its journal entry is damaged: it holds another message"
        restarts = journal.restarts(owner, job_id)
        if not why and restarts >= MAX_RESTARTS:
            why = (
                f"it was interrupted by {restarts + 1} restarts in a row, so it may be what stops "
                "the server (out of memory, say); submit it again, perhaps smaller"
            )
        if why or job is None:
            _interrupt(journal, store, owner, job_id, why)
            continue
        journal.count_restart(owner, job_id)
        entries.append(JobEntry(job, owner, 0, model))
    if entries:
        log.info("journal: %d unfinished jobs queued again after the restart", len(entries))
    return entries


def _interrupt(journal: Journal, store: ResultStore, owner: str, job_id: str, why: str) -> None:
    message = (
        f"job {job_id!r} was lost to a server restart: the server restarted while it was "
        f"queued or running and could not run it again ({why}); submit it again"
    )
    log.warning("journal: %s", message)
    try:
        store.end(owner, Error(ErrorCode.INTERRUPTED, message, id=job_id))
    except StoreError as exc:
        log.error("journal: %s; job %s stays in the journal", exc, job_id)
        return
    journal.remove(owner, job_id)
