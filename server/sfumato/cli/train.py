"""``sfumato train-lora`` and ``sfumato approve``: brand LoRAs from licensed assets.

``train-lora`` checks everything a user typed (the registry, the base model, the dataset's
rights, the options) before torch is imported, so a refused dataset costs no model load;
then it trains in this process on this machine's device (``sfumato.engine.training``, the
one place the CLI imports the engine), shows a progress bar with the loss, and adds the LoRA
to the registry file **unapproved**. ``approve`` flips that flag; a running server reads the
changed file at its next hello, job or models request (service/registry_watch.py): no restart.

The registry file is ``--registry`` (default ``$XDG_DATA_HOME/sfumato/registry.toml``, created
with the built-in models included); serve it with ``sfumato serve --registry <file>``.

With ``--url``, the training runs on that server instead, as a job (task ``train``,
docs/protocol.md 4.2.5): DATASET names a dataset in the server's ``--datasets`` folder, the
server's device trains, and the LoRA goes into the server's registry, unapproved; the same
progress bar shows the loss the server reports, and Ctrl-C cancels the job there.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ..registry import Registry, RegistryError
from ..registry.editing import add_entry, approve
from ..training import defaults_for, load_dataset
from ..training.record import registry_fields

EXIT_CANCELLED = 130


def default_registry() -> Path:
    from ..service.config import default_data_dir

    return default_data_dir() / "registry.toml"


def add_train_commands(sub: Any) -> None:
    t = sub.add_parser(
        "train-lora",
        help="train a LoRA on a licensed dataset; it is added to the registry unapproved",
        description="Train a LoRA on DATASET (a folder with dataset.toml, images and .txt "
        "captions; docs/studio.md) for the base model MODEL. Defaults per family: rank 16, "
        "alpha 16, lr 1e-4; sd15 512² 1000 steps, sdxl 1024² 1500 steps.",
    )
    t.add_argument("dataset", type=Path, help="dataset folder (dataset.toml + images + captions)")
    t.add_argument("--base", required=True, help="base model, by registry name")
    t.add_argument("--name", required=True, help="registry name for the new LoRA")
    t.add_argument("--rank", type=int, help="LoRA rank")
    t.add_argument("--alpha", type=int, help="LoRA alpha (scale = alpha / rank)")
    t.add_argument("--steps", type=int, help="training steps")
    t.add_argument("--lr", type=float, dest="learning_rate", help="learning rate (AdamW)")
    t.add_argument("--seed", type=int, help="seed: the same seed trains the same LoRA")
    t.add_argument("--resolution", type=int, help="training image side (multiple of 8)")
    t.add_argument("--batch-size", type=int, help="images per step (default 1)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    t.add_argument("--out", type=Path, help="folder for the LoRA and its checkpoints")
    t.add_argument("--registry", type=Path, help="registry file to add the LoRA to")
    t.add_argument("--cache", type=Path, help="model cache folder (as for serve)")
    t.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    t.add_argument(
        "--url",
        help="train on this server instead (ws://…): DATASET is then a dataset name in its "
        "--datasets folder, and the LoRA goes into its registry",
    )
    t.add_argument("--token", default=os.environ.get("SFUMATO_TOKEN"),
                   help="with --url: the server's token ($SFUMATO_TOKEN)")  # fmt: skip
    t.set_defaults(run=_train)

    a = sub.add_parser("approve", help="approve a registry entry (a trained LoRA) for use")
    a.add_argument("name", help="the entry's registry name")
    a.add_argument("--registry", type=Path, help="registry file (default: train-lora's)")
    a.set_defaults(run=_approve)


def _train(args: argparse.Namespace) -> int:
    if args.url:
        return _train_on_server(args)
    registry_path: Path = args.registry or default_registry()
    registry = Registry.load(registry_path if registry_path.exists() else None)
    base = registry.get(args.base)
    if base.kind != "base":
        raise RegistryError(
            f"--base {args.base!r} is a {base.kind}, not a base model; pick one of "
            + ", ".join(registry.of_kind("base"))
        )
    if args.name in registry:
        raise RegistryError(
            f"--name {args.name!r} is already in the registry ({registry_path}); choose another "
            "name, or remove that entry first"
        )
    options = defaults_for(
        base.family, tiny=base.tiny, rank=args.rank, alpha=args.alpha, steps=args.steps,
        learning_rate=args.learning_rate, seed=args.seed, resolution=args.resolution,
        batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    dataset = load_dataset(args.dataset)  # refused here, before torch loads
    from ..service.config import default_cache_dir, default_data_dir

    out_dir: Path = args.out or default_data_dir() / "loras" / args.name
    print(
        f"training {args.name!r} on {len(dataset.samples)} images of {dataset.rights.owner} "
        f"({dataset.license}), dataset {dataset.sha256[:16]}…, base {base.name}: rank "
        f"{options.rank}, alpha {options.alpha:g}, {options.steps} steps, lr "
        f"{options.learning_rate:g}, {options.resolution}², seed {options.seed}",
        file=sys.stderr,
    )
    bar = ProgressBar(sys.stderr)
    with CancelOnInterrupt() as cancel:  # from here: a Ctrl-C while torch imports counts too
        from ..engine.devices import choose_device
        from ..engine.hashing import file_sha256
        from ..engine.training import TrainingCancelled, train_lora

        try:
            out = train_lora(
                dataset, base, args.name, out_dir, options,
                cache_dir=args.cache or default_cache_dir(), device=choose_device(args.device),
                resume=args.resume, on_step=bar.update, is_cancelled=cancel.requested,
            )  # fmt: skip
        except TrainingCancelled as exc:
            bar.close()
            print(f"sfumato train-lora: {exc}", file=sys.stderr)
            return EXIT_CANCELLED
    bar.close()
    fields = registry_fields(
        dataset, family=base.family, base_model=base.name, base_sha256=out.base_sha256,
        lora=out.lora, lora_sha256=file_sha256(out.lora), steps=out.steps, options=options,
    )  # fmt: skip
    entry = add_entry(registry_path, args.name, fields)
    print(out.lora)
    print(
        f"added {entry.name!r} to {registry_path} (approved = false). Approve it with "
        f"`sfumato approve {entry.name} --registry {registry_path}`, then serve that registry "
        f"(`sfumato serve --registry {registry_path}`)",
        file=sys.stderr,
    )
    return 0


LOCAL_ONLY = ("resume", "out", "registry", "cache", "device", "batch_size")


def _train_on_server(args: argparse.Namespace) -> int:
    """``train-lora … --url``: the same training as a server job, its progress shown here."""
    from ..client import Client, JobFailed, JobWasCancelled
    from ..protocol import Job, JobParams, Progress, Task, TrainParams

    local = [
        f"--{n.replace('_', '-')}" for n in LOCAL_ONLY if getattr(args, n) not in (None, False)
    ]
    if local:
        raise RegistryError(
            f"{', '.join(local)} choose where a local training runs; with --url the server's "
            "own folders, registry and device decide: leave them out"
        )
    train = TrainParams(
        dataset=str(args.dataset), name=args.name, rank=args.rank, alpha=args.alpha,
        steps=args.steps, learning_rate=args.learning_rate, resolution=args.resolution,
        checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    job = Job(
        f"train-{uuid.uuid4().hex[:12]}", Task.TRAIN,
        JobParams(model=args.base, seed=args.seed, train=train),
    )  # fmt: skip
    bar = ProgressBar(sys.stderr)

    def show(event: object) -> None:
        if isinstance(event, Progress) and event.loss is not None:
            bar.update(event)

    print(f"training {args.name!r} on {args.url}, dataset {args.dataset}, base {args.base}",
          file=sys.stderr)  # fmt: skip
    with Client(args.url, token=args.token, name="sfumato-train-lora") as client:
        try:
            with CancelOnInterrupt() as cancel:
                client.submit(job)
                result = None
                while result is None:
                    try:
                        result = client.wait(job.id, timeout=1.0, on_event=show)
                    except TimeoutError:
                        if cancel.requested():
                            client.cancel(job.id)
        except JobWasCancelled:
            bar.close()
            print(f"sfumato train-lora: job {job.id} cancelled; the server kept a checkpoint",
                  file=sys.stderr)  # fmt: skip
            return EXIT_CANCELLED
        except JobFailed as exc:
            bar.close()
            print(f"sfumato train-lora: the server refused or failed the training: {exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
    bar.close()
    trained = result.trained
    assert trained is not None, "a train job's result names its entry"
    print(trained.name)
    print(
        f"the server added {trained.name!r} to its registry (approved = false) after "
        f"{trained.steps} steps, loss {trained.loss:.4f}, license {trained.license}. Approve it "
        f"with `sfumato approve {trained.name} --registry <the server's registry file>`",
        file=sys.stderr,
    )
    return 0


def _approve(args: argparse.Namespace) -> int:
    path: Path = args.registry or default_registry()
    entry, changed = approve(path, args.name)
    what = "approved" if changed else "was already approved"
    print(
        f"{entry.name} {what} in {path}; a server serving this registry (sfumato serve "
        f"--registry {path}) offers it from its next hello, job or models request",
        file=sys.stderr,
    )
    return 0


class ProgressBar:
    """``step 12/100 [████······] loss 0.1234 · 3.1 it/s`` on one line (a terminal), or a line
    every tenth of the run (a log file)."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.shown = False
        self.first: int | None = None  # a resumed run starts past step 1

    def update(self, progress: Any) -> None:
        step, total, loss = progress.step, progress.total, progress.loss
        filled = self.WIDTH * step // max(total, 1)
        if self.first is None:
            self.first, self.start = step, time.monotonic()
        rate = (step - self.first) / max(time.monotonic() - self.start, 1e-9)
        line = (
            f"step {step}/{total} [{'█' * filled}{'·' * (self.WIDTH - filled)}] "
            f"loss {loss:.4f} · {rate:.1f} it/s"
        )
        if self.tty:
            self.stream.write("\r" + line)
            self.shown = True
        elif step == total or step % max(total // 10, 1) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.shown = False


class CancelOnInterrupt:
    """The first Ctrl-C asks training to stop at the next step (it writes a checkpoint); a
    second one interrupts at once."""

    def __init__(self) -> None:
        self._asked = False
        self._previous: Any = None

    def requested(self) -> bool:
        return self._asked

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self._asked:
            raise KeyboardInterrupt
        self._asked = True
        print("\nstopping after this step (Ctrl-C again to stop now)…", file=sys.stderr)

    def __enter__(self) -> CancelOnInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: no signal handling, cancel still works
            self._previous = None
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
