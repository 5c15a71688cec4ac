"""Wire forms of issue 12: live jobs (params.live, live_key; cancelled.reason), arrays by
reference (input_ref: keep / by hash; shm), welcome.input_cache and welcome.shm.

The resolver here is a plain dict (pure): the service's real one (service/inputrefs.py) is
tested over a socket in tests/server/test_live.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    SUPERSEDED,
    Array,
    Cancelled,
    DType,
    ErrorCode,
    HashRef,
    Job,
    JobParams,
    Limits,
    Placed,
    ProtocolError,
    ShmProbe,
    ShmRef,
    Task,
    Welcome,
    decode_client_message,
    decode_server_message,
    encode,
    encode_bytes,
)
from sfumato.protocol.refs import hash_ref, shm_ref

from .strategies import FAST, arrays, job_ids, jobs

live_keys = st.text(min_size=1, max_size=200)


class DictResolver:
    """Keeps offered arrays by (sha256, dtype, shape); a miss is unknown_input."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, DType, tuple[int, int, int]], bytes] = {}
        self.offered: list[str] = []  # field paths, in the order the decoder offered them
        self.segments: dict[str, bytes] = {}

    def offer(self, field: str, array: Array, sha256: str) -> None:
        if hashlib.sha256(array.data).hexdigest() != sha256:
            raise ProtocolError(ErrorCode.BAD_ARRAY, f"{field}: sha256 differs", field=field)
        self.kept[sha256, array.dtype, array.shape] = bytes(array.data)
        self.offered.append(field)

    def finish(self) -> None:
        pass

    def resolve(self, field: str, ref: HashRef | ShmRef) -> Array:
        if isinstance(ref, ShmRef):
            data = self.segments[ref.shm][ref.offset : ref.offset + ref.nbytes]
            return Array(ref.dtype, ref.shape, data)
        key = (ref.sha256, ref.dtype, ref.shape)
        if key not in self.kept:
            raise ProtocolError(ErrorCode.UNKNOWN_INPUT, f"{field}: not kept", field=field)
        return Array(ref.dtype, ref.shape, self.kept[key])


def sha(array: Array) -> str:
    return hashlib.sha256(array.data).hexdigest()


def keep_all(array: Array) -> Placed:
    return Placed(sha256=sha(array))


def by_hash(array: Array) -> Placed:
    return Placed(ref=hash_ref(array, sha(array)))


@FAST
@given(job=jobs(), live=st.booleans(), key=live_keys)
def test_live_params_round_trip(job: Job, live: bool, key: str) -> None:
    if job.task is Task.TRAIN:
        live = False
    params = replace(job.params, live=live, live_key=key if live else None)
    job = replace(job, params=params)
    assert decode_client_message(encode_bytes(job)) == job


def test_a_plain_job_keeps_its_bytes() -> None:
    header = msgpack.unpackb(bytes(encode(Job("j", Task.GENERATE))[0]))
    assert "live" not in header["params"] and "live_key" not in header["params"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"live": True}, "params.live_key"),
        ({"live": True, "live_key": ""}, "params.live_key"),
        ({"live_key": "doc"}, "params.live_key"),
        ({"live": 1, "live_key": "doc"}, "params.live"),
        ({"live": True, "live_key": "x" * 201}, "params.live_key"),
    ],
)
def test_bad_live_params_name_the_field(params: dict[str, Any], field: str) -> None:
    data = msgpack.packb({"v": 1, "type": "job", "id": "j", "task": "generate", "params": params})
    with pytest.raises(ProtocolError) as info:
        decode_client_message(data)
    assert (info.value.code, info.value.field, info.value.id) == (ErrorCode.BAD_FIELD, field, "j")
    assert "params.live" in info.value.message


def test_train_cannot_be_live() -> None:
    job = Job("j", Task.TRAIN, JobParams(live=True, live_key="k"))
    with pytest.raises(ProtocolError) as info:
        job.check(Limits())
    assert info.value.field == "params.live"


@FAST
@given(job_id=job_ids, reason=st.sampled_from(["", SUPERSEDED, "later-reason"]))
def test_cancelled_reason_round_trips_and_is_absent_when_plain(job_id: str, reason: str) -> None:
    message = Cancelled(job_id, reason)
    wire = encode_bytes(message)
    assert decode_server_message(wire) == message
    assert ("reason" in msgpack.unpackb(wire)) == bool(reason)


@FAST
@given(
    cache=st.integers(0, 2**63 - 1),
    probe=st.none() | st.builds(ShmProbe, st.text(max_size=50), st.text(max_size=50)),
)
def test_welcome_announces_cache_and_probe(cache: int, probe: ShmProbe | None) -> None:
    welcome = Welcome("0.1", 1, ("live", "input_ref", "shm"), input_cache=cache, shm=probe)
    assert decode_server_message(encode_bytes(welcome)) == welcome


def refine(image: Array, mask: Array | None = None) -> Job:
    task = Task.INPAINT if mask is not None else Task.REFINE
    return Job("j", task, JobParams(steps=4, strength=0.5), image, mask)


images = arrays(dtypes=(DType.UINT8,), channels=(3, 4))


@FAST
@given(image=images, data=st.data())
def test_keep_then_by_hash_gives_the_same_job(image: Array, data: st.DataObject) -> None:
    mask = data.draw(arrays(dtypes=(DType.UINT8,), shape=(image.height, image.width, 1)))
    job = refine(image, mask)
    resolver = DictResolver()
    kept = decode_client_message(encode_bytes_with(job, keep_all), resolver=resolver)
    assert kept == job and resolver.offered == ["inputs.image", "inputs.mask"]
    wire = encode_bytes_with(job, by_hash)
    assert len(wire) < 1024  # no payload at all: the header names the hashes
    assert decode_client_message(wire, resolver=resolver) == job


def encode_bytes_with(job: Job, place: Any) -> bytes:
    return b"".join(encode(job, place))


@FAST
@given(image=images)
def test_a_miss_is_unknown_input_naming_the_input_and_job(image: Array) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client_message(encode_bytes_with(refine(image), by_hash), resolver=DictResolver())
    assert (info.value.code, info.value.field, info.value.id) == (
        ErrorCode.UNKNOWN_INPUT, "inputs.image", "j"
    )  # fmt: skip


@FAST
@given(image=images, flip=st.integers(0, 63))
def test_a_wrong_hash_is_refused(image: Array, flip: int) -> None:
    good = sha(image)
    bad = good[:flip] + ("0" if good[flip] != "0" else "1") + good[flip + 1 :]
    wire = encode_bytes_with(refine(image), lambda a: Placed(sha256=bad))
    with pytest.raises(ProtocolError) as info:
        decode_client_message(wire, resolver=DictResolver())
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.image")


@FAST
@given(image=images)
def test_without_a_resolver_references_are_bad_array(image: Array) -> None:
    for place in (keep_all, by_hash, lambda a: Placed(ref=shm_ref(a, "sfumato-1-" + "0" * 16, 0))):
        with pytest.raises(ProtocolError) as info:
            decode_client_message(encode_bytes_with(refine(image), place))
        assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.image")
        assert "send" in info.value.message or "leave it out" in info.value.message


@FAST
@given(image=images, offset=st.integers(0, 64))
def test_shm_reference_round_trip(image: Array, offset: int) -> None:
    segment = "sfumato-42-" + "ab" * 8
    resolver = DictResolver()
    resolver.segments[segment] = bytes(offset) + bytes(image.data)
    wire = encode_bytes_with(refine(image), lambda a: Placed(ref=shm_ref(a, segment, offset)))
    assert decode_client_message(wire, resolver=resolver) == refine(image)


@pytest.mark.parametrize(
    ("ref", "hint"),
    [
        ({"shm": "/etc/passwd", "offset": 0, "dtype": "uint8", "shape": [1, 1, 3]}, "shm"),
        ({"shm": "sfumato-1-" + "0" * 16, "offset": -1, "dtype": "uint8", "shape": [1, 1, 3]}, "offset"),
        ({"shm": "sfumato-1-" + "0" * 16, "offset": 0, "dtype": "uint8", "shape": [1, 1, 3], "x": 1}, "'x'"),
        ({"sha256": "A" * 64, "dtype": "uint8", "shape": [1, 1, 3]}, "sha256"),
        ({"sha256": "a" * 64, "dtype": "int8", "shape": [1, 1, 3]}, "dtype"),
        ({"sha256": "a" * 64, "dtype": "uint8", "shape": [1, 3]}, "shape"),
    ],
)  # fmt: skip
def test_malformed_references_name_the_input(ref: dict[str, Any], hint: str) -> None:
    data = msgpack.packb(
        {"v": 1, "type": "job", "id": "j", "task": "refine", "inputs": {"image": ref}}
    )
    with pytest.raises(ProtocolError) as info:
        decode_client_message(data, resolver=DictResolver())
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_ARRAY, "inputs.image")
    assert hint in info.value.message
