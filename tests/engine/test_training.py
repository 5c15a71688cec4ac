"""LoRA training on the tiny models (real diffusers + peft, CPU): it changes the LoRA and the
output, is deterministic for a seed, resumes to the same weights, and the CLI refuses what
it must and adds the LoRA unapproved until `sfumato approve`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from sfumato.cli.main import main
from sfumato.engine import Engine
from sfumato.engine.training import TrainingCancelled, TrainingError, train_lora
from sfumato.protocol import LoraRef
from sfumato.registry import Registry
from sfumato.service.admission import Refusal, admit
from sfumato.training import Dataset, DatasetError, defaults_for, load_dataset

from .helpers import job, picture, run

SMALL = {"steps": 4, "checkpoint_every": 2, "resolution": 32}  # latents 4×4: seconds on a CPU
OWNED = 'owner = "Northwind"\nlicense = "LicenseRef-Northwind"\nsource = "in-house shoot"\n'


def make_dataset(root: Path, count: int = 3, toml: str = OWNED) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.toml").write_text(toml)
    for n in range(count):
        Image.fromarray(picture(72, 88, seed=n)).save(root / f"brand-{n}.png")
        (root / f"brand-{n}.txt").write_text(f"a northwind brand picture, variant {n}")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(make_dataset(tmp_path_factory.mktemp("dataset")))


def train(dataset: Dataset, tiny_cache: Path, out: Path, **options: object):  # type: ignore[no-untyped-def]
    opts = defaults_for("sd15", tiny=True, **{**SMALL, **options})
    base = Registry.load(None).get("tiny-sd")
    return train_lora(dataset, base, "brand", out, opts, cache_dir=tiny_cache, device="cpu")


@pytest.fixture(scope="module")
def first(dataset: Dataset, tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One uninterrupted run, at a learning rate that moves a tiny LoRA in four steps."""
    return train(dataset, tiny_cache, tmp_path_factory.mktemp("first"), learning_rate=1e-2)


def test_same_seed_same_bytes_and_a_resumed_run_ends_where_an_uninterrupted_one_does(
    first, dataset: Dataset, tiny_cache: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    again = train(dataset, tiny_cache, tmp_path / "b", learning_rate=1e-2)
    other = train(dataset, tiny_cache, tmp_path / "c", learning_rate=1e-2, seed=1)
    assert first.lora.read_bytes() == again.lora.read_bytes()
    assert first.losses == again.losses and len(first.losses) == 4
    assert first.lora.read_bytes() != other.lora.read_bytes()

    seen: list[int] = []
    opts = defaults_for("sd15", tiny=True, **SMALL, learning_rate=1e-2)
    base = Registry.load(None).get("tiny-sd")
    with pytest.raises(TrainingCancelled) as cancelled:  # "Ctrl-C" after step 3 (no checkpoint)
        train_lora(dataset, base, "brand", tmp_path / "d", opts, cache_dir=tiny_cache,
                   device="cpu", on_step=lambda s: seen.append(s.step),
                   is_cancelled=lambda: len(seen) >= 3)  # fmt: skip
    assert cancelled.value.step == 3 and seen == [1, 2, 3]
    assert cancelled.value.checkpoint == tmp_path / "d" / "checkpoints" / "step-000003"
    steps = sorted(p.name for p in (tmp_path / "d" / "checkpoints").iterdir())
    assert steps == ["step-000002", "step-000003"]  # the periodic one and the cancel's
    assert not (tmp_path / "d" / "brand.safetensors").exists()
    with pytest.raises(TrainingError, match="continue it with --resume"):
        train_lora(dataset, base, "brand", tmp_path / "d", opts, cache_dir=tiny_cache, device="cpu")
    with pytest.raises(TrainingError, match="was made with rank = 4"):
        train_lora(dataset, base, "brand", tmp_path / "d", defaults_for(
            "sd15", tiny=True, **SMALL, learning_rate=1e-2, rank=8), cache_dir=tiny_cache, device="cpu", resume=True)  # fmt: skip
    resumed = train_lora(dataset, base, "brand", tmp_path / "d", opts, cache_dir=tiny_cache,
                         device="cpu", resume=True)  # fmt: skip
    assert resumed.resumed_from == 3 and resumed.losses == first.losses[3:]
    assert resumed.lora.read_bytes() == first.lora.read_bytes()


def test_training_changes_the_lora_and_the_output(first, tiny_cache: Path) -> None:  # type: ignore[no-untyped-def]
    out = first
    weights = load_file(str(out.lora))
    ups = [t for k, t in weights.items() if "lora_B" in k or "lora.up" in k]
    downs = [t for k, t in weights.items() if "lora_A" in k or "lora.down" in k]
    assert ups and len(ups) == len(downs)
    assert all(float(t.abs().max()) > 0 for t in ups)  # B starts at zero: training moved it
    registry = Registry.parse(
        f'include_builtin = true\n[models.brand]\nkind = "lora"\nfamily = "sd15"\n'
        f'source = "file:{out.lora}"\n',
        builtin=Registry.load(None),
    )
    engine = Engine(registry, cache_dir=tiny_cache, device="cpu")
    plain = run(engine, job(seed=3)).images[0]
    styled = run(engine, job(seed=3, loras=(LoraRef("brand", 1.0),))).images[0]
    assert np.abs(plain.astype(int) - styled.astype(int)).mean() > 0.5


def test_cli_refuses_unlicensed_data_then_adds_the_lora_unapproved_until_approved(
    tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry.toml"
    common = ["--base", "tiny-sd", "--name", "brand", "--registry", str(registry),
              "--cache", str(tiny_cache), "--device", "cpu", "--steps", "2", "--resolution", "32"]  # fmt: skip
    unlicensed = make_dataset(tmp_path / "unlicensed", 1, 'owner = "x"\nsource = "y"\n')
    assert main(["train-lora", str(unlicensed), *common]) == 1
    assert "the dataset has no license; declare license" in capsys.readouterr().err
    partial = make_dataset(tmp_path / "partial", 2, OWNED + 'covers = ["brand-0.png"]\n')
    assert main(["train-lora", str(partial), *common]) == 1
    err = capsys.readouterr().err
    assert "brand-1.png has no declared rights" in err and "brand-0.png has" not in err
    assert not registry.exists()  # nothing written for a refused dataset

    data = make_dataset(tmp_path / "data", 2)
    out = tmp_path / "lora"
    assert main(["train-lora", str(data), *common, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "brand.safetensors")
    assert "step 2/2" in captured.err and "loss" in captured.err
    entry = Registry.load(registry).get("brand")
    assert not entry.approved and entry.kind == "lora" and entry.family == "sd15"
    assert entry.source == f"file:{(out / 'brand.safetensors').resolve()}"
    assert entry.dataset_sha256 == load_dataset(data).sha256
    assert entry.license == "LicenseRef-Northwind" and entry.base_model == "tiny-sd"
    assert len(entry.base_sha256) == 64 and len(entry.sha256) == 64
    styled = job(loras=(LoraRef("brand", 0.8),))
    with pytest.raises(Refusal) as refused:
        admit(styled, Registry.load(registry), "tiny-sd")
    assert refused.value.code.value == "not_approved"
    assert main(["train-lora", str(data), *common]) == 1  # the name is taken now
    assert "already in the registry" in capsys.readouterr().err

    assert main(["approve", "brand", "--registry", str(registry)]) == 0
    assert Registry.load(registry).get("brand").approved
    assert admit(styled, Registry.load(registry), "tiny-sd").name == "tiny-sd"
    # tests/server/test_train_job.py serves such a registry and reads the dataset hash back
    # from an output's credentials.


@pytest.mark.slow  # a `sfumato train-lora` subprocess (imports torch)
def test_ctrl_c_stops_at_the_next_step_and_keeps_a_checkpoint(
    tiny_cache: Path, tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "data", 1)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sfumato.cli", "train-lora", str(data), "--base", "tiny-sd",
           "--name", "brand", "--steps", "100000", "--checkpoint-every", "1", "--resolution", "32",
           "--registry", str(tmp_path / "registry.toml"), "--out", str(out),
           "--cache", str(tiny_cache), "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints").is_dir() and time.monotonic() < deadline:
            time.sleep(0.1)  # training runs once a checkpoint folder appears
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    match = re.search(
        r"cancelled after step (\d+); checkpoint (\S+) kept, continue with --resume", err
    )
    assert match, err
    assert Path(match.group(2)) == out / "checkpoints" / f"step-{int(match.group(1)):06d}"
    assert (Path(match.group(2)) / "state.pt").is_file()
    assert not (tmp_path / "registry.toml").exists()  # nothing registered for a cancelled run


def test_sdxl_trains_with_both_text_encoders_and_its_lora_loads(
    dataset: Dataset, tiny_cache: Path, tmp_path: Path
) -> None:
    """The SDXL recipe (pooled text embedding, size/crop time ids) on the tiny SDXL model."""
    base = Registry.load(None).get("tiny-sdxl")
    opts = defaults_for("sdxl", tiny=True, **{**SMALL, "steps": 2, "learning_rate": 1e-2})
    out = train_lora(dataset, base, "brand-xl", tmp_path, opts, cache_dir=tiny_cache, device="cpu")
    assert len(out.losses) == 2 and all(loss > 0 for loss in out.losses)
    registry = Registry.parse(
        f'include_builtin = true\n[models.brand-xl]\nkind = "lora"\nfamily = "sdxl"\n'
        f'source = "file:{out.lora}"\n',
        builtin=Registry.load(None),
    )
    engine = Engine(registry, cache_dir=tiny_cache, device="cpu")
    plain = run(engine, job(seed=3, model="tiny-sdxl")).images[0]
    styled = run(engine, job(seed=3, model="tiny-sdxl", loras=(LoraRef("brand-xl", 1.0),)))
    assert np.abs(plain.astype(int) - styled.images[0].astype(int)).mean() > 0.1


def test_an_image_that_does_not_decode_is_refused_naming_it(
    tiny_cache: Path, tmp_path: Path
) -> None:
    root = make_dataset(tmp_path / "data", 1)
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "broken.txt").write_text("a broken file")
    with pytest.raises(
        DatasetError, match=r"broken.png cannot be read as an image .*replace or remove it"
    ):
        train(load_dataset(root), tiny_cache, tmp_path / "out")
    assert not (tmp_path / "out" / "brand.safetensors").exists()
