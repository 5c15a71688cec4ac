"""A ``train`` job (docs/protocol.md 4.2.5): a LoRA trained on the server's device from a
dataset in its datasets folder, added to its registry file unapproved.

So a plugin or the batch runner can start training without a shell on the server: the job
names the dataset by folder name (a client never sends a server path), the checks are
those of ``sfumato train-lora`` (rights declared, options in range, a free name) and run
before any step, and the result is an ordinary ``result`` — stored before it is sent, so a
reconnecting client can fetch it — with no images and a ``trained`` map. The LoRA goes to
``<registry folder>/loras/<name>/``; a job interrupted by a server stop continues from its
checkpoint when the journal runs it again after the restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol import ErrorCode, Job, JobRejected, Progress, ServerMessage, Trained
from ..registry import ModelEntry, Registry, RegistryError
from ..registry.editing import add_entry
from ..training import Dataset, DatasetError, TrainOptions, defaults_for, load_dataset
from ..training.options import OptionError
from ..training.record import registry_fields
from .config import ServerConfig


@dataclass(frozen=True)
class TrainedOutput:
    """What the worker stores for a train job: no images, the seed, the base, the entry."""

    seeds: tuple[int, ...]
    model: str
    tiny: bool
    trained: Trained
    images: tuple[np.ndarray, ...] = ()
    hashes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    dataset: Dataset
    base: ModelEntry
    options: TrainOptions
    registry_file: Path
    out_dir: Path


def train_seed(job: Job) -> int:
    """params.seed, or one derived from the job id: the same after a restart, so a journaled
    job resumes its own checkpoint instead of being refused as another run."""
    if job.params.seed is not None:
        return job.params.seed
    return int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big")


def plan(job: Job, config: ServerConfig, registry: Registry, model: str) -> Plan:
    """Every check a train job must pass before a step runs; raises JobRejected naming the
    field and the fix."""
    spec = job.params.train
    if spec is None:  # Job.check guarantees it for task train
        raise _refuse("task train needs params.train", "params.train")
    if config.registry is None:
        raise JobRejected(
            ErrorCode.UNSUPPORTED,
            "params.train: this server serves the built-in registry and has no registry file "
            "to add the LoRA to; start it with --registry FILE (sfumato train-lora creates one)",
            field="params.train",
        )
    base = registry.get(model)
    current = Registry.load(config.registry)  # the file now: another run may have added names
    if spec.name in registry or spec.name in current:
        raise _refuse(
            f"params.train.name: {spec.name!r} is already in the registry; choose another name",
            "params.train.name",
        )
    folder = Path(config.datasets) / spec.dataset
    if not folder.is_dir():
        held = sorted(p.name for p in Path(config.datasets).glob("*") if p.is_dir())
        raise _refuse(
            f"params.train.dataset: the server has no dataset {spec.dataset!r}; it has "
            f"{', '.join(held) or 'none'}. Put the folder (dataset.toml, images, captions) in "
            "the server's datasets folder (sfumato serve --datasets)",
            "params.train.dataset",
        )
    try:
        dataset = load_dataset(folder)
        options = defaults_for(
            base.family, tiny=base.tiny, rank=spec.rank, alpha=spec.alpha, steps=spec.steps,
            learning_rate=spec.learning_rate, resolution=spec.resolution,
            checkpoint_every=spec.checkpoint_every, seed=train_seed(job),
        )  # fmt: skip
    except DatasetError as exc:
        raise _refuse(f"params.train.dataset: {exc}", "params.train.dataset") from None
    except OptionError as exc:
        raise _refuse(f"params.train: {exc}", "params.train") from None
    out_dir = config.registry.parent / "loras" / spec.name
    return Plan(dataset, base, options, config.registry, out_dir)


def run_train(
    engine: Any,
    config: ServerConfig,
    registry: Registry,
    job: Job,
    model: str,
    report: Callable[[ServerMessage], None],
    is_cancelled: Callable[[], bool],
) -> TrainedOutput:
    """Train on the engine thread; TrainingCancelled (a JobCancelled) ends it as cancelled."""
    from ..engine.hashing import file_sha256
    from ..engine.training import TrainingError, TrainStep, train_lora, train_on

    p = plan(job, config, registry, model)
    spec = job.params.train
    assert spec is not None
    report(Progress(job.id, 0, 0, stage="loading"))

    def on_step(step: TrainStep) -> None:
        report(Progress(job.id, step.step, step.total, stage="train", loss=max(step.loss, 0.0)))

    resume = any((p.out_dir / "checkpoints").glob("step-*/state.pt"))
    run = partial(
        train_lora, p.dataset, name=spec.name, out_dir=p.out_dir, options=p.options,
        resume=resume, on_step=on_step, is_cancelled=is_cancelled,
    )  # fmt: skip
    try:
        out = train_on(engine, p.base.name, run)
    except DatasetError as exc:  # an image that does not decode
        raise _refuse(f"params.train.dataset: {exc}", "params.train.dataset") from None
    except TrainingError as exc:
        raise _refuse(
            f"params.train: {exc}; or remove {p.out_dir.name}/ under the registry's loras folder",
            "params.train",
        ) from None
    sha256 = file_sha256(out.lora)
    fields = registry_fields(
        p.dataset, family=p.base.family, base_model=p.base.name, base_sha256=out.base_sha256,
        lora=out.lora, lora_sha256=sha256, steps=out.steps, options=p.options,
    )  # fmt: skip
    try:
        add_entry(p.registry_file, spec.name, fields)
    except RegistryError as exc:
        raise _refuse(f"params.train.name: {exc}", "params.train.name") from None
    trained = Trained(
        spec.name, sha256, p.dataset.sha256, p.dataset.license, out.steps, max(out.loss, 0.0)
    )
    return TrainedOutput((p.options.seed,), p.base.name, p.base.tiny, trained)


def _refuse(message: str, field: str) -> JobRejected:
    return JobRejected(ErrorCode.BAD_FIELD, message, field=field)
