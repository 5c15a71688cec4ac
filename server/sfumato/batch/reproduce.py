"""``sfumato reproduce FILE``: read an output's content credentials, run the same job again on
a server, and compare pixels. Same model weights, same device class: the same image."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..client import Client, make_job
from ..imageio import read_image, read_mask
from ..protocol import LoraRef, Paint, SfumatoError, Tile
from ..provenance import verify_png


class ReproduceError(SfumatoError):
    pass


@dataclass(frozen=True)
class Outcome:
    matches: bool
    summary: str


def job_params(facts: dict[str, Any]) -> dict[str, Any]:
    """The job parameters recorded in the Sfumato assertion, ready for ``make_job``."""
    params = dict(facts["params"])
    expand = params.get("expand") or {}
    params["expand"] = tuple(int(expand.get(k, 0)) for k in ("left", "top", "right", "bottom"))
    params["tile"] = Tile(params.get("tile", "none"))
    params["paint"] = Paint(params.get("paint", "generate"))  # credentials hold the wire value
    params["bounds"] = tuple(float(v) for v in params.get("bounds", ()))
    params["loras"] = tuple(
        LoraRef(lo["name"], float(lo["weight"])) for lo in params.get("loras", ())
    )
    params.update(
        prompt=facts["prompt"], negative=facts.get("negative", ""), seed=facts["seed"], variants=1
    )
    return params


def reproduce(
    file: Path, url: str, token: str | None, image: Path | None, mask: Path | None, timeout: float
) -> Outcome:
    data = file.read_bytes()
    check = verify_png(data)
    if not check.ok or check.facts is None:
        raise ReproduceError(
            f"{file} has no valid Sfumato content credentials ({check.state}); nothing to reproduce"
        )
    facts = check.facts
    for key, what in (("controlnets", "control images"), ("references", "reference pictures"),
                      ("regions", "region masks")):  # fmt: skip
        if facts.get(key):
            raise ReproduceError(
                f"{file} was made with {what}, which credentials record only by hash"
            )
    inputs = {"image": image and read_image(image), "mask": mask and read_mask(mask)}
    for name, recorded in facts.get("inputs", {}).items():
        given = inputs.get(name)
        if given is None:
            raise ReproduceError(
                f"{file} was made from an input {name!r}; pass it with --{name} PATH"
            )
        if hashlib.sha256(np.ascontiguousarray(given).tobytes()).hexdigest() != recorded:
            raise ReproduceError(
                f"--{name} is not the input this output was made from (sha256 differs)"
            )
    job = make_job(facts["task"], inputs["image"], inputs["mask"], **job_params(facts))
    with Client(url, token=token, name="sfumato-reproduce") as client:
        result = client.run(job, timeout=timeout)
    original = read_image(file)[:, :, :3]
    again = result.images[0].to_numpy()
    if original.shape == again.shape and np.array_equal(original, again):
        return Outcome(
            True, f"MATCH: {file} reproduced exactly (seed {facts['seed']}, model {result.model})"
        )
    if original.shape != again.shape:
        return Outcome(
            False,
            f"DIFFERENT: size {again.shape[1]}×{again.shape[0]} vs {original.shape[1]}×{original.shape[0]}",
        )
    diff = np.abs(original.astype(np.int16) - again.astype(np.int16))
    return Outcome(
        False,
        f"DIFFERENT: mean pixel difference {diff.mean():.2f}, max {int(diff.max())} "
        "(another device, model weights or library version?)",
    )
