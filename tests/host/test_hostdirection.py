"""The hosts' reference and region builders (hostdirection.py): what they build is what the
server reads back, index passes become one mask per visible object, and a job they build
with a bad region is refused with the protocol's field before anything is sent."""

from __future__ import annotations

import random
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.hostdirection import (
    RegionText,
    directed,
    reference,
    reference_size,
    region,
    regions_from_index,
)
from sfumato.protocol import (
    Job,
    JobParams,
    Limits,
    ProtocolError,
    Task,
    decode_client_message,
    encode_bytes,
)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(16, 1024))
def test_reference_size_keeps_the_aspect_and_never_enlarges(w: int, h: int, side: int) -> None:
    w2, h2 = reference_size(w, h, side)
    assert max(w2, h2) <= max(side, 1) or (w2, h2) == (w, h)
    assert w2 <= w and h2 <= h
    if max(w, h) > side:
        assert max(w2, h2) == side
        assert abs(w2 / h2 - w / h) <= max(w / h, h / w) * 2 / min(w2, h2) + 1e-9


@settings(max_examples=30, deadline=None)
@given(st.integers(8, 12), st.integers(8, 12), st.integers(0, 2**32), st.sampled_from([1, 2, 3]))
def test_index_pass_regions_round_trip_through_the_wire(
    w8: int, h8: int, seed: int, objects: int
) -> None:
    width, height = w8 * 8, h8 * 8
    rng = random.Random(seed)
    ids = [rng.randrange(0, objects + 1) for _ in range(width * height)]  # 0: background
    texts = {k: RegionText(f"object {k}", negative="blur") for k in range(1, objects + 2)}
    for index in (bytes(ids), array("H", ids)):
        regions = regions_from_index(index, width, height, texts)
        visible = sorted({i for i in ids if i in texts})
        assert [r.prompt for r in regions] == [f"object {k}" for k in visible]
        for r, key in zip(regions, visible, strict=True):
            assert bytes(r.mask.data) == bytes(255 if i == key else 0 for i in ids)
        pic = bytes(rng.randrange(256) for _ in range(20 * 30 * 4))
        job = directed(
            Job("j", Task.GENERATE, JobParams(width=width, height=height)),
            (reference(pic, 30, 20, 4, weight=0.5),),
            regions,
        )
        assert decode_client_message(encode_bytes(job), Limits()) == job


def test_a_bad_region_is_refused_with_its_field_before_sending() -> None:
    job = Job("j", Task.GENERATE, JobParams(width=64, height=64))
    wrong = region(bytes(64 * 32), 32, 64, RegionText("a lamp"))
    with pytest.raises(ProtocolError) as caught:
        directed(job, regions=(wrong,))
    assert caught.value.field == "inputs.regions[0].mask"
    blank = region(bytes(64 * 64), 64, 64, RegionText("  "))
    with pytest.raises(ProtocolError) as caught:
        directed(job, regions=(blank,))
    assert caught.value.field == "inputs.regions[0].prompt"
    with pytest.raises(ValueError, match="send 8-bit rows"):
        reference(bytes(10), 4, 4)
    assert regions_from_index(bytes(64 * 64), 64, 64, {0: RegionText(" ")}) == ()
