"""The input cache's byte budget and LRU order, the resolver's hit / miss / eviction and its
shared-memory reads, and the sweep of dead processes' segments — no server needed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato import shmem
from sfumato.protocol import Array, DType, ErrorCode, HashRef, ProtocolError, ShmRef
from sfumato.service.inputrefs import ConnectionResolver, InputCache

from ..protocol.strategies import FAST

sizes = st.lists(st.integers(0, 300), min_size=1, max_size=40)


@FAST
@given(capacity=st.integers(1, 1000), sizes=sizes)
def test_the_cache_keeps_the_newest_within_its_budget(capacity: int, sizes: list[int]) -> None:
    cache = InputCache(capacity)
    for n, size in enumerate(sizes):
        cache.put(("o", str(n), DType.UINT8, (1, 1, 1)), bytes(size))
        assert cache.used <= capacity
    # What is kept is exactly the longest run of newest entries that fits; one larger than
    # the whole budget is never kept and evicts nothing.
    expected, used = set(), 0
    for n in reversed(range(len(sizes))):
        if sizes[n] > capacity:
            continue
        if used + sizes[n] > capacity:
            break
        expected.add(n)
        used += sizes[n]
    kept = {n for n in range(len(sizes)) if ("o", str(n), DType.UINT8, (1, 1, 1)) in cache}
    assert kept == expected and cache.used == used


def test_a_read_makes_an_entry_the_newest() -> None:
    cache = InputCache(30)
    keys = [("o", c, DType.UINT8, (1, 1, 1)) for c in "abc"]
    for key in keys:
        cache.put(key, bytes(10))
    assert cache.get(keys[0]) is not None  # a is used again …
    cache.put(("o", "d", DType.UINT8, (1, 1, 1)), bytes(10))  # … so b goes, not a
    assert keys[0] in cache and keys[1] not in cache and keys[2] in cache


def array(seed: int, side: int = 40) -> Array:
    data = bytes((seed * 7 + i) % 256 for i in range(side * side * 3))
    return Array(DType.UINT8, (side, side, 3), data)


def ref(a: Array) -> HashRef:
    return HashRef(hashlib.sha256(a.data).hexdigest(), a.dtype, a.shape)


def test_the_resolver_hits_misses_and_evicts_per_identity() -> None:
    first, second = array(1), array(2)
    cache = InputCache(first.nbytes + second.nbytes // 2)  # room for one
    mine, theirs = ConnectionResolver(cache, "me", False), ConnectionResolver(cache, "you", False)
    mine.offer("inputs.image", first, ref(first).sha256)
    assert mine.resolve("inputs.image", ref(first)) == first  # hit
    with pytest.raises(ProtocolError) as info:  # another identity never sees it
        theirs.resolve("inputs.image", ref(first))
    assert (info.value.code, info.value.field) == (ErrorCode.UNKNOWN_INPUT, "inputs.image")
    mine.offer("inputs.mask", second, ref(second).sha256)  # evicts the first
    with pytest.raises(ProtocolError) as info:
        mine.resolve("inputs.controls[0].image", ref(first))
    assert (info.value.code, info.value.field) == (
        ErrorCode.UNKNOWN_INPUT, "inputs.controls[0].image"
    )  # fmt: skip
    assert "send the job again" in info.value.message
    assert mine.resolve("inputs.image", ref(second)) == second


def test_a_wrong_hash_is_refused_and_not_kept() -> None:
    a = array(3)
    cache = InputCache(10**6)
    resolver = ConnectionResolver(cache, "me", False)
    with pytest.raises(ProtocolError) as info:
        resolver.offer("inputs.image", a, "0" * 64)
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.image")
    assert len(cache) == 0


@pytest.mark.usefixtures("needs_shm")
@FAST
@given(offset=st.integers(0, 100), seed=st.integers(0, 255))
def test_shared_memory_is_read_in_place_and_the_segment_stays_the_clients(
    offset: int, seed: int
) -> None:
    a = array(seed, side=8)
    segment = shmem.Segment(offset + a.nbytes)
    try:
        segment.write(offset, a.data)
        resolver = ConnectionResolver(None, "me", True)
        got = resolver.resolve("inputs.image", ShmRef(segment.name, offset, a.dtype, a.shape))
        assert got == a
        with pytest.raises(ProtocolError) as info:  # past the end: named, not a crash
            resolver.resolve("inputs.mask", ShmRef(segment.name, offset + 1, a.dtype, a.shape))
        assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.mask")
        resolver.finish()
        assert (Path("/dev/shm") / segment.name).exists()  # the client's, to reuse
        resolver.close()
        assert got == a  # a mapping closed while a job views it lives on with the view
        segment.close()
        with pytest.raises(ProtocolError) as info:  # gone: bad_array naming the input
            ConnectionResolver(None, "me", True).resolve(
                "inputs.image", ShmRef(segment.name, offset, a.dtype, a.shape)
            )
        assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.image")
    finally:
        segment.close()


@pytest.mark.usefixtures("needs_shm")
def test_the_sweep_removes_only_dead_processes_segments() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a client that makes a segment and dies without a word
        segment = shmem.Segment(64)
        os.write(write, segment.name.encode())
        os._exit(0)
    os.waitpid(pid, 0)
    dead = os.read(read, 200).decode()
    mine = shmem.Segment(64)
    try:
        assert (Path("/dev/shm") / dead).exists()
        gone = shmem.sweep()
        assert dead in gone and mine.name not in gone
        assert not (Path("/dev/shm") / dead).exists() and (Path("/dev/shm") / mine.name).exists()
    finally:
        mine.close()
        shmem.unlink(dead)


@pytest.mark.usefixtures("needs_shm")
def test_a_client_that_exited_but_is_not_reaped_yet_is_swept() -> None:
    """A killed client's socket closes while it exits: the server sweeps while the client is a
    zombie (its parent has not waited for it yet), and its segments must go then."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        segment = shmem.Segment(64)
        os.write(write, segment.name.encode())
        os._exit(0)
    dead = os.read(read, 200).decode()
    try:
        stat = Path(f"/proc/{pid}/stat")
        for _ in range(200):  # until it has exited (a zombie: not reaped, below)
            if stat.read_text().rpartition(")")[2].split()[0] == "Z":
                break
            os.sched_yield()
            time.sleep(0.01)
        assert not shmem.alive(pid)
        assert dead not in shmem.sweep(only={os.getpid()})  # another client's sweep: left
        assert dead in shmem.sweep(only={pid})
    finally:
        os.waitpid(pid, 0)
        shmem.unlink(dead)
    assert shmem.alive(os.getpid())
