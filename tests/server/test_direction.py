"""References and regions through a real server (docs/protocol.md 4.2.6): announced, run end
to end over the websocket, bad ones refused with the field, the connection still open, and
every reference and region named in the output's content credentials."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sfumato.batch.reproduce import ReproduceError, reproduce
from sfumato.client import Client, make_job
from sfumato.protocol import (
    Array,
    Error,
    ErrorCode,
    LoraRef,
    Reference,
    ReferenceKind,
    Region,
    Result,
)
from sfumato.provenance import verify_png

from .conftest import Peer, finished, rgb
from .procs import ServerProcess
from .test_approval import tiny_weights_sha256

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


def test_credentials_name_every_reference_and_region(
    server: object, model_cache: Path, tmp_path: Path
) -> None:
    """The signed PNG and its JSON sidecar record each reference picture's hash with its
    weight, schedule and block choice, the adapter and encoder by name and weights hash, and
    each region's mask hash, words and LoRAs (docs/studio.md, content credentials)."""
    left, right = np.zeros((64, 64, 1), np.uint8), np.zeros((64, 64, 1), np.uint8)
    left[:, :32], right[:, 32:] = 255, 255
    pictures = (rgb(30, 20, seed=1), rgb(24, 24, seed=2))
    job = dataclasses.replace(
        make_job("generate", **SMALL, files=True),
        references=(
            Reference(Array.from_numpy(pictures[0]), weight=0.8, end=0.7),
            Reference(Array.from_numpy(pictures[1]), 0.5, 0.2, 1.0, ReferenceKind.STYLE),
        ),
        regions=(
            Region(Array.from_numpy(left), "a brass lamp", loras=(LoraRef("tiny-sd-style", 0.7),)),
            Region(Array.from_numpy(right), "a velvet chair", negative="dust"),
        ),
    )
    with Client(server.url) as client:  # type: ignore[attr-defined]
        result = client.run(job, timeout=180)
    check = verify_png(bytes(result.files[0]))
    assert check.ok and check.facts is not None, check
    facts = check.facts

    def sha(a: np.ndarray) -> str:
        return hashlib.sha256(a.tobytes()).hexdigest()

    assert facts["inputs"] == {
        "references[0].image": sha(pictures[0]), "references[1].image": sha(pictures[1]),
        "regions[0].mask": sha(left), "regions[1].mask": sha(right),
    }  # fmt: skip
    built = model_cache / "tiny"
    adapter = {
        "model": "tiny-sd-ip-adapter", "sha256": tiny_weights_sha256(built / "sd15-ip-adapter"),
        "encoder": "tiny-sd-image-encoder",
        "encoder_sha256": tiny_weights_sha256(built / "sd15-image-encoder"),
    }  # fmt: skip
    assert adapter["sha256"] != adapter["encoder_sha256"]
    assert facts["references"] == [
        {**adapter, "weight": 0.8, "start": 0.0, "end": 0.7, "kind": None},
        {**adapter, "weight": 0.5, "start": 0.2, "end": 1.0, "kind": "style"},
    ]
    style = {"name": "tiny-sd-style", "weight": 0.7,
             "sha256": tiny_weights_sha256(built / "sd15-lora-style")}  # fmt: skip
    assert facts["regions"] == [
        {"prompt": "a brass lamp", "negative": "", "loras": [style]},
        {"prompt": "a velvet chair", "negative": "dust", "loras": []},
    ]
    assert facts["loras"] == [] and facts["params"]["loras"] == []  # region LoRAs stay there
    (folder,) = [d / job.id for d in server.results.iterdir() if (d / job.id).is_dir()]  # type: ignore[attr-defined]
    sidecar = json.loads((folder / "image-0.json").read_text())
    assert sidecar["credentials"] == facts
    stored = json.loads((folder / "result.json").read_text())["conditioning"]
    assert stored == {
        k: facts[k] for k in ("loras", "controlnets", "references", "regions", "inputs")
    }
    signed = tmp_path / "directed.png"
    signed.write_bytes(bytes(result.files[0]))
    with pytest.raises(ReproduceError, match="reference pictures"):  # hashes only: no pictures
        reproduce(signed, server.url, None, None, None, 30)  # type: ignore[attr-defined]


def test_without_credentials_result_json_still_says_what_steered_the_job(
    serve: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """``credentials = false``: no signature, no sidecar, but the store's result.json keeps
    each reference's parameters and each region's words, with every picture's and mask's
    sha256, so nothing about what made a result is lost."""
    config = tmp_path / "sfumato.toml"
    config.write_text("[server]\ncredentials = false\n")
    server = serve("--config", str(config))
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[16:48, 16:48] = 255
    picture = rgb(20, 28, seed=5)
    job = dataclasses.replace(
        make_job("generate", **SMALL),
        references=(Reference(Array.from_numpy(picture), 0.6, 0.1, 0.9, ReferenceKind.CONTENT),),
        regions=(Region(Array.from_numpy(mask), "a copper kettle", negative="rust"),),
    )
    peer = Peer(server.url)
    peer.hello()
    assert isinstance(outcome(peer, job), Result)
    peer.close()
    (folder,) = [d / job.id for d in server.results.iterdir() if (d / job.id).is_dir()]
    assert not list(folder.glob("image-*.json")), "no credentials were asked for"
    stored = json.loads((folder / "result.json").read_text())["conditioning"]
    (ref,) = stored["references"]
    assert (ref["weight"], ref["start"], ref["end"], ref["kind"]) == (0.6, 0.1, 0.9, "content")
    assert ref["model"] == "tiny-sd-ip-adapter" and ref["encoder"] == "tiny-sd-image-encoder"
    assert stored["regions"] == [{"prompt": "a copper kettle", "negative": "rust", "loras": []}]
    assert stored["inputs"] == {
        "references[0].image": hashlib.sha256(picture.tobytes()).hexdigest(),
        "regions[0].mask": hashlib.sha256(mask.tobytes()).hexdigest(),
    }
