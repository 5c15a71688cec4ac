"""The server's half of arrays by reference (capabilities ``input_ref`` and ``shm``,
docs/protocol.md 2.2): the LRU input cache under a byte budget, the resolver a connection's
decoder uses, and the shared-memory probe that tells a client it shares this machine.

Everything here runs on the event loop while one message is decoded (protocol/refs.py); the
cache holds its own copies of the bytes (a received frame is given back to the in-flight
budget when its job ends), so a by-hash input never depends on an earlier message's buffer.
Shared-memory inputs are read in place: the client leaves a segment alone until the job that
uses it has ended, then reuses it for its next edits; each connection keeps its segments
mapped, so a live client's next edit costs the client's one copy and no new mapping. A mapping
closed while a job still views it goes when the job does.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import OrderedDict

from .. import shmem
from ..protocol import Array, DType, ErrorCode, HashRef, ProtocolError, ShmProbe, ShmRef

log = logging.getLogger("sfumato.server")
Key = tuple[str, str, DType, tuple[int, int, int]]  # owner, sha256, dtype, shape
MAPPED_KEPT = 16  # a connection's segments kept mapped between messages


class InputCache:
    """Least recently used arrays, per identity, up to ``capacity`` bytes in all."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._items: OrderedDict[Key, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Key) -> bool:
        return key in self._items

    def put(self, key: Key, data: bytes) -> None:
        """Keep ``data`` (the newest); older entries go while the budget is exceeded. An array
        larger than the whole budget is not kept (its by-hash reference will miss)."""
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= len(old)
        if len(data) > self.capacity:
            return
        self._items[key] = data
        self.used += len(data)
        while self.used > self.capacity:
            _, evicted = self._items.popitem(last=False)
            self.used -= len(evicted)

    def get(self, key: Key) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data


class ConnectionResolver:
    """Answers one connection's references while its messages are decoded (refs.Resolver).
    ``finish`` after each message: it unmaps and unlinks the shared-memory segments read."""

    def __init__(self, cache: InputCache | None, owner: str, shm: bool) -> None:
        self.cache = cache
        self.owner = owner
        self.shm = shm
        self._mapped: dict[str, shmem.Mapped] = {}
        self.pids: set[int] = set()  # the processes whose segments it read (the client's)

    def offer(self, field: str, array: Array, sha256: str) -> None:
        if self.cache is None:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{field}: this server keeps no inputs (input_cache_bytes 0, capability "
                "input_ref not announced); leave sha256 out",
                field=field,
            )
        if hashlib.sha256(array.data).hexdigest() != sha256:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{field}: sha256 {sha256[:16]}… is not the hash of the array's bytes; hash "
                "the raw bytes as sent (C order, little-endian), or leave sha256 out",
                field=field,
            )
        key = (self.owner, sha256, array.dtype, array.shape)
        if key not in self.cache:
            self.cache.put(key, bytes(array.data))
        else:
            self.cache.get(key)  # used again: the newest

    def resolve(self, field: str, ref: HashRef | ShmRef) -> Array:
        if isinstance(ref, ShmRef):
            return self._from_shm(field, ref)
        data = None
        if self.cache is not None:
            data = self.cache.get((self.owner, ref.sha256, ref.dtype, ref.shape))
        if data is None:
            budget = 0 if self.cache is None else self.cache.capacity
            raise ProtocolError(
                ErrorCode.UNKNOWN_INPUT,
                f"{field}: this server does not keep input {ref.sha256[:16]}… (its input cache "
                f"holds {budget} bytes, least recently used first out); send the job again with "
                "the array's bytes",
                field=field,
            )
        return Array(ref.dtype, ref.shape, data)

    def _from_shm(self, field: str, ref: ShmRef) -> Array:
        if not self.shm:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{field}: this server takes no shared-memory inputs (capability shm not "
                "announced); send the bytes",
                field=field,
            )
        mapped = self._mapped.get(ref.shm)
        if mapped is None:
            try:
                mapped = shmem.Mapped(ref.shm)
            except OSError as exc:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"{field}: shared-memory segment {ref.shm!r} cannot be opened "
                    f"({exc.strerror or exc}); is the client on this machine? Send the bytes",
                    field=field,
                ) from None
            self._mapped[ref.shm] = mapped
            pid = shmem.owner_pid(ref.shm)
            if pid is not None:
                self.pids.add(pid)
        if ref.offset + ref.nbytes > mapped.size:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{field}: {ref.dtype.value} {list(ref.shape)} needs bytes {ref.offset}.."
                f"{ref.offset + ref.nbytes} of segment {ref.shm!r}, which holds {mapped.size}",
                field=field,
            )
        self._mapped[ref.shm] = self._mapped.pop(ref.shm)  # the most recently used last
        # In place, no copy: the client leaves the segment alone until the job has ended.
        return Array(ref.dtype, ref.shape, mapped.view(ref.offset, ref.nbytes))

    def finish(self) -> None:
        """The message is read. Keeps the most recent mappings for the next messages."""
        while len(self._mapped) > MAPPED_KEPT:
            name = next(iter(self._mapped))
            self._mapped.pop(name).close()

    def close(self) -> None:
        """The connection is gone: every mapping goes."""
        for mapped in self._mapped.values():
            mapped.close()
        self._mapped.clear()


class Probe:
    """The segment ``welcome.shm`` names: a client that reads its nonce shares this machine."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self._segment: shmem.Segment | None = shmem.Segment(
            len(self.nonce), shmem.new_name("probe")
        )
        self._segment.write(0, self.nonce.encode())
        self.wire = ShmProbe(self._segment.name, self.nonce)

    def close(self) -> None:
        if self._segment is not None:
            self._segment.close()
            self._segment = None


def make_probe() -> Probe | None:
    """None where this platform has no POSIX shared memory, or /dev/shm refuses."""
    if not shmem.AVAILABLE:
        return None
    try:
        return Probe()
    except OSError as exc:
        log.warning("shared memory unavailable (%s): clients on this machine send bytes", exc)
        return None
