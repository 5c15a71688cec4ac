"""POSIX shared-memory segments for arrays between a client and a server on one machine
(capability ``shm``, docs/protocol.md 2.2). Used by the client (it writes) and the service (it
reads, then unlinks); host-neutral, standard library only, shipped with the host layer.

Segments are opened with ``_posixshmem`` and ``mmap`` directly rather than through
``multiprocessing.shared_memory``: before Python 3.13 that class registers every segment with
multiprocessing's resource tracker, a helper process started from ``sys.executable`` — which
inside Krita or Blender is the host application, not a Python. Cleanup is instead the
protocol's: a client unlinks its segments when it closes, and the server sweeps the segments
of clients whose process has died (:func:`sweep`) whenever a connection ends and at start.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import secrets
from collections.abc import Collection
from pathlib import Path

try:
    import _posixshmem
except ImportError:  # Windows: no POSIX shared memory; clients send bytes
    _posixshmem = None

AVAILABLE = _posixshmem is not None and hasattr(mmap, "PROT_READ")
DEV_SHM = Path("/dev/shm")  # where Linux shows the segments (the sweep lists it)
OWNED = re.compile(r"sfumato-(?:probe-)?([0-9]{1,10})-[0-9a-f]{16,32}\Z")


def new_name(kind: str = "") -> str:
    """``sfumato-<pid>-<64 random bits>`` (a client's), ``sfumato-probe-<pid>-…`` (a server's)."""
    return f"sfumato-{kind + '-' if kind else ''}{os.getpid()}-{secrets.token_hex(8)}"


class Segment:
    """A segment this process creates and writes (the client side); :meth:`close` unmaps and
    unlinks it (the server may have unlinked it already)."""

    def __init__(self, size: int, name: str | None = None) -> None:
        assert _posixshmem is not None, "check shmem.AVAILABLE first"
        self.name = name or new_name()
        self.size = max(size, 1)
        fd = _posixshmem.shm_open("/" + self.name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        try:
            os.ftruncate(fd, max(size, 1))
            self.buf: mmap.mmap | None = mmap.mmap(fd, max(size, 1))
        except BaseException:
            os.close(fd)
            unlink(self.name)
            raise
        os.close(fd)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        assert self.buf is not None
        view = memoryview(data).cast("B")
        self.buf[offset : offset + view.nbytes] = view

    def close(self) -> None:
        if self.buf is not None:
            self.buf.close()
            self.buf = None
        unlink(self.name)


class Mapped:
    """A segment another process made, mapped read-only (the server side)."""

    def __init__(self, name: str) -> None:
        assert _posixshmem is not None, "check shmem.AVAILABLE first"
        fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
        try:
            self.size = os.fstat(fd).st_size
            self.buf = mmap.mmap(fd, self.size, prot=mmap.PROT_READ) if self.size else None
        finally:
            os.close(fd)

    def read(self, offset: int, nbytes: int) -> bytes:
        """A copy of the bytes."""
        assert self.buf is not None and offset + nbytes <= self.size
        return self.buf[offset : offset + nbytes]

    def view(self, offset: int, nbytes: int) -> memoryview:
        """The bytes in place, read-only; the mapping lives as long as a view of it does."""
        assert self.buf is not None and offset + nbytes <= self.size
        return memoryview(self.buf)[offset : offset + nbytes]

    def close(self) -> None:
        """Unmap now, or — while views of it are alive (a job's inputs) — when the last goes."""
        if self.buf is not None:
            with contextlib.suppress(BufferError):
                self.buf.close()
            self.buf = None


def unlink(name: str) -> None:
    if _posixshmem is not None:
        with contextlib.suppress(FileNotFoundError):
            _posixshmem.shm_unlink("/" + name)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: a killed client's socket closes
    (and the server sweeps) while it exits, before its parent has reaped it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:  # Linux: the state after the command's closing parenthesis; Z = exited, not reaped
        stat = Path(f"/proc/{pid}/stat").read_text("ascii", "replace")
    except OSError:
        return True  # no /proc (macOS …): kill() said it exists
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def owner_pid(name: str) -> int | None:
    """The process that made the segment ``name`` (its name says), if it is one of ours."""
    match = OWNED.fullmatch(name)
    return int(match.group(1)) if match else None


def sweep(only: Collection[int] | None = None) -> list[str]:
    """Unlink the segments of Sfumato processes that are gone (a client killed between making a
    segment and sending it, a server killed with its probe); ``only``: of those processes.
    Linux lists them in /dev/shm; elsewhere there is nothing to list and nothing is swept.
    Returns the names unlinked."""
    if not AVAILABLE or not DEV_SHM.is_dir():
        return []
    gone = []
    with contextlib.suppress(OSError):
        for entry in DEV_SHM.iterdir():
            pid = owner_pid(entry.name)
            if pid is not None and (only is None or pid in only) and not alive(pid):
                unlink(entry.name)
                gone.append(entry.name)
    return gone
