"""The wire form of a LoRA training job (capability ``train``, docs/protocol.md 4.2.5).

A ``job`` with task ``train`` names the base model in ``params.model``, the seed in
``params.seed`` and everything else in ``params.train``: the dataset (a folder name under the
server's datasets folder: clients name things, they never send server paths), the registry
name of the LoRA to make, and the options, each absent meaning the family's default
(sfumato.training.options). Progress carries the loss; the result has no images and a
``trained`` map naming the registry entry it added, unapproved.

Sans-I/O like the rest of the protocol: ranges are checked here; whether the dataset's rights
are declared is the server's to check, against the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._fields import Reader
from .errors import ErrorCode, ProtocolError

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # a registry name, not . or ..
MAX_TRAIN_STEPS = 100_000


@dataclass(frozen=True)
class TrainParams:
    """``params.train``: what to train on, what to call it, and the options (None: default)."""

    dataset: str
    name: str
    rank: int | None = None
    alpha: int | None = None
    steps: int | None = None
    learning_rate: float | None = None
    resolution: int | None = None
    checkpoint_every: int | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.dataset, "name": self.name}
        for key in ("rank", "alpha", "steps", "learning_rate", "resolution", "checkpoint_every"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def read(cls, r: Reader) -> TrainParams:
        params = cls(
            dataset=_name(r, "dataset", "a dataset folder name under the server's datasets"),
            name=_name(r, "name", "a registry name for the new LoRA"),
            rank=r.integer("rank", None, lo=1, hi=1024),
            alpha=r.integer("alpha", None, lo=1, hi=4096),
            steps=r.integer("steps", None, lo=1, hi=MAX_TRAIN_STEPS),
            learning_rate=r.number("learning_rate", None, lo=1e-8, hi=1.0),
            resolution=r.integer("resolution", None, lo=8, hi=4096),
            checkpoint_every=r.integer("checkpoint_every", None, lo=1, hi=MAX_TRAIN_STEPS),
        )
        r.finish()
        if params.resolution is not None and params.resolution % 8:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"params.train.resolution {params.resolution} must be a multiple of 8 (the "
                f"VAE's scale); try {max(8, params.resolution // 8 * 8)}",
                field="params.train.resolution",
            )
        return params


def _name(r: Reader, key: str, what: str) -> str:
    value: str = r.text(key, max_len=64)
    if not NAME.match(value):
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"params.train.{key} must be {what}: 1–64 characters of A–Z a–z 0–9 _ . -, not "
            f"starting with . or -; got {value!r}",
            field=f"params.train.{key}",
        )
    return value


@dataclass(frozen=True)
class Trained:
    """``result.trained``: the registry entry a training job added (approved: false)."""

    name: str  # the new entry's registry name
    sha256: str  # of the LoRA file
    dataset_sha256: str  # the dataset's manifest hash
    license: str  # every license its images are under
    steps: int
    loss: float  # of the last step
    approved: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name, "sha256": self.sha256, "dataset_sha256": self.dataset_sha256,
            "license": self.license, "steps": self.steps, "loss": self.loss,
            "approved": self.approved,
        }  # fmt: skip

    @classmethod
    def from_wire(cls, r: Reader) -> Trained:
        trained = cls(
            name=r.text("name"),
            sha256=r.text("sha256"),
            dataset_sha256=r.text("dataset_sha256"),
            license=r.text("license", ""),
            steps=r.integer("steps", lo=0, hi=2**31),
            loss=r.number("loss", lo=0.0, hi=float("inf")),
            approved=r.boolean("approved", False),
        )
        return trained  # no finish(): a client ignores fields a newer server adds (section 3)


def check_train(job: Any) -> None:
    """A ``train`` job has ``params.train`` and nothing a picture job takes; a picture job has
    no ``params.train``. ``job`` is a :class:`~sfumato.protocol.messages.Job` (typed loosely:
    messages.py imports this module)."""
    task = job.task.value
    if task != "train":
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"params.train is for task train only; leave it out of a {task} job",
            field="params.train",
        )
    if job.params.train is None:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            "task train needs params.train with dataset and name (docs/protocol.md 4.2.5)",
            field="params.train",
        )
    for name, given in (
        ("inputs.image", job.image is not None),
        ("inputs.mask", job.mask is not None),
        ("inputs.controls", bool(job.controls)),
        ("inputs.views", job.multiview is not None),
        ("params.loras", bool(job.params.loras)),
    ):
        if given:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"task train takes no {name}: it trains on the dataset's images and the base "
                "model (params.model) alone; leave it out",
                field=name,
            )
