"""The client's half of arrays by reference (docs/protocol.md 2.2), so that hosts never see
it: which inputs go by hash, which through shared memory, and the resend after a miss.

:class:`Client` (client.py) asks :meth:`InputRefs.place_for` how to encode each job and hands
every event it receives to :meth:`InputRefs.after`, which answers ``unknown_input`` by sending
the job again with its bytes — the host hears ``accepted`` and the result as if nothing
happened. Thread-safe: jobs are submitted on the host's thread, events arrive on the client's
reader thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from . import shmem
from .protocol import (
    Accepted,
    Array,
    Cancelled,
    DType,
    Error,
    ErrorCode,
    Job,
    Placed,
    Result,
    ServerMessage,
    Welcome,
)
from .protocol.refs import MIN_REF_BYTES, Place, hash_ref, shm_ref

Key = tuple[str, DType, tuple[int, int, int]]
KNOWN_MAX = 4096  # hashes remembered per connection; the server's cache is the real bound
POOL_FREE = 8  # idle segments kept for the next edits


class _Pool:
    """Segments reused from job to job: a fresh shared-memory page costs far more than a
    copy into one already mapped (benchmarks/live.py), and live edits repeat their shapes."""

    def __init__(self) -> None:
        self._free: list[shmem.Segment] = []

    def take(self, nbytes: int) -> shmem.Segment:
        fits = [s for s in self._free if nbytes <= s.size <= 2 * nbytes]
        if fits:
            segment = min(fits, key=lambda s: s.size)
            self._free.remove(segment)
            return segment
        return shmem.Segment(nbytes)

    def give(self, segment: shmem.Segment) -> None:
        self._free.append(segment)
        while len(self._free) > POOL_FREE:
            self._free.pop(0).close()

    def close(self) -> None:
        for segment in self._free:
            segment.close()
        self._free.clear()


@dataclass
class _Sent:
    job: Job
    segments: list[shmem.Segment] = field(default_factory=list)
    resent: bool = False


class InputRefs:
    """Per connection: what the server said it offers and what this client sent it."""

    def __init__(self, welcome: Welcome) -> None:
        caps = set(welcome.capabilities)
        self.by_hash = "input_ref" in caps and welcome.input_cache > 0
        self.shm = "shm" in caps and welcome.shm is not None and same_machine(welcome)
        self._known: dict[Key, None] = {}  # insertion-ordered: the oldest forgotten first
        self._sent: dict[str, _Sent] = {}
        self._lock = threading.Lock()
        self._pool = _Pool()

    @property
    def active(self) -> bool:
        return self.by_hash or self.shm

    def place_for(self, job: Job, *, inline: bool = False) -> Place | None:
        """How to encode ``job``'s arrays; None: all as bytes. ``inline``: bytes for every
        array, kept by the server again (the resend after ``unknown_input``)."""
        if not self.active:
            return None
        sent = _Sent(job)
        with self._lock:
            self._sent[job.id] = sent

        def place(array: Array) -> Placed | None:
            if array.nbytes < MIN_REF_BYTES:
                return None
            if self.shm and not inline:
                try:
                    with self._lock:
                        segment = self._pool.take(array.nbytes)
                except OSError:  # /dev/shm full or refused: bytes from now on
                    self.shm = False
                else:
                    segment.write(0, array.data)
                    sent.segments.append(segment)
                    return Placed(ref=shm_ref(array, segment.name, 0))
            if not self.by_hash:
                return None
            digest = hashlib.sha256(array.data).hexdigest()
            key = (digest, array.dtype, array.shape)
            with self._lock:
                if key in self._known and not inline:
                    return Placed(ref=hash_ref(array, digest))
                self._known[key] = None
                while len(self._known) > KNOWN_MAX:
                    del self._known[next(iter(self._known))]
            return Placed(sha256=digest)

        return place

    def after(self, event: ServerMessage, resend: Callable[[Job, Place | None], None]) -> bool:
        """Called with each event; True: the event is handled here (a miss was resent) and
        must not reach the host."""
        job_id = getattr(event, "id", None)
        if not isinstance(event, (Accepted, Error, Result, Cancelled)) or job_id is None:
            return False
        if isinstance(event, Accepted):  # its segments stay the server's until the job ends
            return False
        with self._lock:
            sent = self._sent.pop(job_id, None)
            if sent is not None:  # the job has ended: its segments serve the next edit
                for segment in sent.segments:
                    self._pool.give(segment)
        if sent is None:
            return False
        miss = isinstance(event, Error) and event.code is ErrorCode.UNKNOWN_INPUT
        if not miss or sent.resent:
            return False
        with self._lock:  # the server forgot: send every input with its bytes
            self._known.clear()
        place = self.place_for(sent.job, inline=True)
        with self._lock:
            self._sent[job_id].resent = True
        resend(sent.job, place)
        return True

    def close(self) -> None:
        """The connection is gone: segments of jobs never answered are removed."""
        with self._lock:
            sent, self._sent = list(self._sent.values()), {}
            self._pool.close()
        for item in sent:
            for segment in item.segments:
                segment.close()


def same_machine(welcome: Welcome) -> bool:
    """Whether this process can read the server's probe segment and find its nonce."""
    probe = welcome.shm
    if probe is None or not shmem.AVAILABLE:
        return False
    try:
        mapped = shmem.Mapped(probe.probe)
    except (OSError, ValueError):
        return False
    try:
        nonce = probe.nonce.encode()
        return mapped.size >= len(nonce) and mapped.read(0, len(nonce)) == nonce
    finally:
        mapped.close()
