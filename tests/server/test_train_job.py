"""Trained LoRAs on a real server: an approved one's outputs name its dataset in their
credentials; training as a server job (docs/protocol.md 4.2.5) over a real websocket —
progress with the loss, a result naming the registry entry it added unapproved (kept for
fetch), refusals that name the field, and cancel keeping a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from sfumato.cli.main import main
from sfumato.client import Client, make_job
from sfumato.protocol import (
    Cancel,
    Cancelled,
    Error,
    Fetch,
    Job,
    JobParams,
    LoraRef,
    Progress,
    Result,
    Task,
    TrainParams,
)
from sfumato.provenance import verify_png
from sfumato.registry import Registry
from sfumato.training import load_dataset

from ..conftest import RunningServer, running_server
from ..engine.helpers import picture
from .conftest import Peer

OWNED = 'owner = "Northwind"\nlicense = "LicenseRef-Northwind"\nsource = "in-house shoot"\n'


def dataset(root: Path, toml: str, count: int = 2) -> Path:
    root.mkdir(parents=True)
    (root / "dataset.toml").write_text(toml)
    for n in range(count):
        Image.fromarray(picture(40, 48, seed=n)).save(root / f"img-{n}.png")
        (root / f"img-{n}.txt").write_text(f"a northwind picture {n}")
    return root


@pytest.fixture(scope="module")
def trainer(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[RunningServer, Path, Path]]:
    root = tmp_path_factory.mktemp("train-server")
    registry = root / "registry.toml"
    registry.write_text("include_builtin = true\n")
    datasets = root / "datasets"
    dataset(datasets / "brand", OWNED)
    dataset(datasets / "unlicensed", 'owner = "x"\nsource = "y"\n', 1)
    # A LoRA trained and approved with the CLI before the server reads the registry.
    cli = ["--registry", str(registry), "--cache", str(model_cache), "--device", "cpu"]
    assert (
        main(
            [
                "train-lora",
                str(datasets / "brand"),
                "--base",
                "tiny-sd",
                "--name",
                "cli-lora",
                "--steps",
                "2",
                "--resolution",
                "32",
                "--out",
                str(root / "cli"),
                *cli,
            ]
        )
        == 0
    )
    assert main(["approve", "cli-lora", "--registry", str(registry)]) == 0
    extra = ("--registry", str(registry), "--datasets", str(datasets), "--no-preload")
    with running_server(root / "results", model_cache, *extra) as server:
        yield server, registry, datasets


@pytest.mark.slow
def test_outputs_made_with_a_trained_lora_name_its_dataset_in_their_credentials(trainer) -> None:  # type: ignore[no-untyped-def]
    server, registry, datasets = trainer
    entry = Registry.load(registry).get("cli-lora")
    made = make_job("generate", prompt="brand", seed=2, width=64, height=64, steps=2,
                    loras=(LoraRef("cli-lora", 0.8),), files=True)  # fmt: skip
    with Client(server.url) as client:
        result = client.run(made, timeout=120)
    check = verify_png(bytes(result.files[0]))  # read back from the signed file
    assert check.ok and check.facts is not None, check
    (used,) = check.facts["loras"]
    assert used["name"] == "cli-lora" and used["sha256"] == entry.sha256
    assert used["dataset_sha256"] == load_dataset(datasets / "brand").sha256
    assert (used["base_model"], used["base_sha256"]) == ("tiny-sd", entry.base_sha256)


def train_job(job_id: str, **spec: object) -> Job:
    params = TrainParams(**{"dataset": "brand", "resolution": 32, **spec})  # type: ignore[arg-type]
    return Job(job_id, Task.TRAIN, JobParams(model="tiny-sd", seed=5, train=params))


def ended(message: object) -> bool:
    return isinstance(message, (Result, Error, Cancelled))


@pytest.mark.slow  # one server start and two short trainings on the tiny model
def test_a_train_job_reports_the_loss_and_adds_an_unapproved_entry(trainer) -> None:  # type: ignore[no-untyped-def]
    server, registry, datasets = trainer
    peer = Peer(server.url)
    assert "train" in peer.hello().capabilities
    peer.send(train_job("t1", name="brand-lora", steps=3, checkpoint_every=2))
    seen = peer.until(ended)
    result = seen[-1]
    assert isinstance(result, Result), result
    steps = [m for m in seen if isinstance(m, Progress) and m.stage == "train"]
    assert [(m.step, m.total) for m in steps] == [(1, 3), (2, 3), (3, 3)]
    assert all(m.loss is not None and m.loss > 0 for m in steps)
    assert result.images == () and result.seeds == (5,) and result.model == "tiny-sd"
    trained = result.trained
    assert trained is not None and trained.name == "brand-lora" and not trained.approved
    assert trained.dataset_sha256 == load_dataset(datasets / "brand").sha256
    assert trained.license == "LicenseRef-Northwind" and trained.steps == 3
    entry = Registry.load(registry).get("brand-lora")
    assert not entry.approved and entry.sha256 == trained.sha256
    assert entry.dataset_sha256 == trained.dataset_sha256
    assert (
        Path(entry.location) == registry.parent / "loras" / "brand-lora" / "brand-lora.safetensors"
    )
    peer.send(Fetch("t1"))  # stored before it was sent, the trained map included
    again = peer.until(ended)[-1]
    assert isinstance(again, Result) and again.trained == trained

    peer.send(train_job("t2", name="long", steps=500, checkpoint_every=1000))
    first = peer.until(lambda m: isinstance(m, Progress) and m.stage == "train")
    assert first[-1].total == 500
    peer.send(Cancel("t2"))
    stopped = peer.until(ended)[-1]
    assert isinstance(stopped, Cancelled), stopped
    kept = list((registry.parent / "loras" / "long" / "checkpoints").glob("step-*/state.pt"))
    assert len(kept) == 1  # the step reached is kept for a resume
    assert "long" not in Registry.load(registry)
    peer.close()


@pytest.mark.slow
def test_train_lora_with_url_trains_on_the_server_and_says_what_it_added(  # type: ignore[no-untyped-def]
    trainer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sfumato train-lora NAME --url``: the server trains (its dataset, its registry), the
    CLI shows the loss it reports and names the entry; a dataset the server refuses, or a
    local-only option, is a clear refusal and adds nothing."""
    server, registry, _datasets = trainer
    args = ["train-lora", "brand", "--base", "tiny-sd", "--steps", "2", "--resolution", "32",
            "--seed", "3", "--url", server.url]  # fmt: skip
    assert main([*args, "--name", "remote-lora"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "remote-lora"
    assert "step 2/2" in err and "loss " in err and "approved = false" in err, err
    entry = Registry.load(registry).get("remote-lora")
    assert not entry.approved and entry.base_model == "tiny-sd"

    unlicensed = [*args[:1], "unlicensed", *args[2:]]
    assert main([*unlicensed, "--name", "remote-x"]) == 1
    assert "the dataset has no license" in capsys.readouterr().err
    assert main([*args, "--name", "remote-y", "--out", "somewhere"]) != 0
    assert "--out" in capsys.readouterr().err
    assert not {"remote-x", "remote-y"} & set(Registry.load(registry).names())


@pytest.mark.slow
def test_train_jobs_that_cannot_run_are_refused_naming_the_field(trainer) -> None:  # type: ignore[no-untyped-def]
    server, registry, _datasets = trainer
    peer = Peer(server.url)
    peer.hello()
    cases = [
        (train_job("r1", name="x1", dataset="unlicensed"), "params.train.dataset",
         "the dataset has no license"),
        (train_job("r2", name="x2", dataset="missing"), "params.train.dataset",
         "it has brand, unlicensed"),
        (train_job("r3", name="tiny-sd"), "params.train.name", "already in the registry"),
    ]  # fmt: skip
    for job, field, words in cases:
        peer.send(job)
        error = peer.until(ended)[-1]
        assert isinstance(error, Error), error
        assert error.field == field and words in error.message, error
    picture_job = Job("r4", Task.GENERATE, JobParams(train=TrainParams("brand", "y")))
    peer.send(picture_job)
    error = peer.until(ended)[-1]
    assert isinstance(error, Error) and error.field == "params.train", error
    assert "for task train only" in error.message
    assert not {"x1", "x2"} & set(Registry.load(registry).names())  # nothing was added
    peer.close()


def test_a_cluster_server_does_not_offer_training() -> None:
    """Training needs the in-process worker; a server on Ray replicas neither announces
    `train` nor queues it (routing refuses it as unsupported, naming the way to train)."""
    from sfumato.service.routing import CAPABILITIES, capabilities

    assert "train" in CAPABILITIES and capabilities(False) == CAPABILITIES
    assert capabilities(True) == tuple(c for c in CAPABILITIES if c != "train")
