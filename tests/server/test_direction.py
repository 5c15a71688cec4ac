"""References and regions through a real server (docs/protocol.md 4.2.6): announced, run end
to end over the websocket, and bad ones refused with the field, the connection still open."""

from __future__ import annotations

import dataclasses

import numpy as np

from sfumato.client import make_job
from sfumato.protocol import Array, Error, ErrorCode, LoraRef, Reference, Region, Result

from .conftest import Peer, finished, rgb

SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 4, "prompt": "a room"}


def outcome(peer: Peer, job: object) -> object:
    peer.send(job)  # type: ignore[arg-type]
    return peer.until(finished(job.id))[-1]  # type: ignore[attr-defined]


def test_references_and_regions_end_to_end(server: object, peer: Peer) -> None:
    fresh = Peer(server.url)  # type: ignore[attr-defined]
    assert {"reference", "regions"} <= set(fresh.hello().capabilities)
    fresh.close()
    half = np.zeros((64, 64, 1), np.uint8)
    half[:, :32] = 255
    plain = make_job("generate", **SMALL)
    directed = dataclasses.replace(
        make_job("generate", **SMALL),
        references=(Reference(Array.from_numpy(rgb(30, 20)), weight=0.8, end=0.7),),
        regions=(
            Region(Array.from_numpy(half), "a brass lamp", loras=(LoraRef("tiny-sd-style"),)),
        ),
    )
    first, second = outcome(peer, plain), outcome(peer, directed)
    assert isinstance(first, Result) and isinstance(second, Result), (first, second)
    a, b = first.images[0].to_numpy(), second.images[0].to_numpy()
    assert a.shape == b.shape == (64, 64, 3) and not np.array_equal(a, b)

    wrong = dataclasses.replace(
        make_job("generate", **SMALL), regions=(Region(Array.from_numpy(half[:32]), "x"),)
    )
    error = outcome(peer, wrong)
    assert isinstance(error, Error) and error.code is ErrorCode.BAD_ARRAY, error
    assert error.field == "inputs.regions[0].mask" and "output size" in error.message
    unknown = dataclasses.replace(
        make_job("generate", **SMALL),
        regions=(Region(Array.from_numpy(half), "x", loras=(LoraRef("nope"),)),),
    )
    error = outcome(peer, unknown)
    assert isinstance(error, Error) and error.code is ErrorCode.UNKNOWN_MODEL, error
    assert error.field == "inputs.regions[0].loras[0].name"
    again = outcome(peer, make_job("generate", **SMALL))  # the server is fine, and unchanged
    assert isinstance(again, Result) and np.array_equal(again.images[0].to_numpy(), a)
