"""Reference images through the tiny IP-Adapter (engine/references.py, docs/protocol.md 4.2.6):
a reference changes the output, weight 0 is bit-identical to no reference, the schedule and
the block choice act, nothing of the adapter stays behind after the job, and the adapter's
and encoder's sha256 pins are checked."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sfumato.engine import Engine
from sfumato.engine.errors import ModelUnavailable
from sfumato.engine.tiny import tiny_dir
from sfumato.engine.tiny_adapter import ADAPTER_FILE
from sfumato.engine.tiny_parts import ensure_part
from sfumato.protocol import (
    Array,
    ErrorCode,
    JobRejected,
    Reference,
    ReferenceKind,
    Region,
    Task,
)
from sfumato.registry import Registry

from .helpers import job, picture, run


def ref(seed: int = 0, **options: object) -> Reference:
    return Reference(Array.from_numpy(picture(40, 56, seed=seed)), **options)  # type: ignore[arg-type]


def diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b).mean())


@pytest.fixture(scope="module")
def plain(engine: Engine) -> np.ndarray:
    return run(engine, job(seed=5)).images[0]


def test_a_reference_changes_the_output_and_weight_zero_does_not(
    engine: Engine, plain: np.ndarray
) -> None:
    loaded = engine._loader.current
    assert loaded is not None
    before = {n: type(p) for n, p in loaded.base.unet.attn_processors.items()}
    one = run(engine, replace(job(seed=5), references=(ref(),))).images[0]
    other = run(engine, replace(job(seed=5), references=(ref(seed=9),))).images[0]
    zero = run(engine, replace(job(seed=5), references=(ref(weight=0.0),))).images[0]
    assert diff(one, plain) > 2, "a reference at weight 1 moves the tiny image by levels"
    assert diff(one, other) > 0.1, "the picture matters, not only the adapter"
    assert np.array_equal(zero, plain)
    # gone after the job: the UNet's own processors and no image projection
    assert {n: type(p) for n, p in loaded.base.unet.attn_processors.items()} == before
    assert loaded.base.unet.encoder_hid_proj is None
    assert np.array_equal(run(engine, job(seed=5)).images[0], plain)


def test_schedule_blocks_and_several_references_act(engine: Engine, plain: np.ndarray) -> None:
    full = run(engine, replace(job(seed=5), references=(ref(),))).images[0]
    early = run(engine, replace(job(seed=5), references=(ref(end=0.5),))).images[0]
    late = run(engine, replace(job(seed=5), references=(ref(start=0.5),))).images[0]
    style = run(engine, replace(job(seed=5), references=(ref(kind=ReferenceKind.STYLE),)))
    two = run(engine, replace(job(seed=5), references=(ref(), ref(seed=9, weight=0.5))))
    # the first steps set the layout: a reference there moves the image almost as much as a
    # whole-schedule one (tiny model: 29 vs 0.07 levels); one in the last step only slightly
    assert diff(early, plain) > 1 and not np.array_equal(early, full)
    assert diff(late, full) > 1 and not np.array_equal(late, plain)
    assert diff(style.images[0], full) > 0.3 and diff(style.images[0], plain) > 0.3
    assert diff(two.images[0], full) > 0.3


def test_refine_with_a_reference_and_regions_together(engine: Engine) -> None:
    image = picture(64, 64, seed=2)
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[:, :32] = 255
    base = job(Task.REFINE, image=image, seed=1, strength=0.8)
    plain = run(engine, base).images[0]
    both = replace(
        base, references=(ref(),), regions=(Region(Array.from_numpy(mask), "a brass lamp"),)
    )
    out = run(engine, both).images[0]
    assert out.shape == plain.shape and diff(out, plain) > 1
    assert np.array_equal(run(engine, base).images[0], plain)


def test_a_family_without_an_adapter_is_unsupported(tiny_cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        'default = "b"\n[models.b]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'
    )
    eng = Engine(Registry.load(path), cache_dir=tiny_cache, device="cpu")
    with pytest.raises(JobRejected) as caught:
        run(eng, replace(job(seed=1), references=(ref(),)))
    assert (caught.value.code, caught.value.field) == (ErrorCode.UNSUPPORTED, "inputs.references")
    assert "ip_adapter" in caught.value.message


def test_sdxl_reference_runs(tiny_cache: Path) -> None:
    eng = Engine(Registry.load(None), cache_dir=tiny_cache, device="cpu")
    base = job(seed=3, model="tiny-sdxl", steps=2)
    plain = run(eng, base).images[0]
    out = run(eng, replace(base, references=(ref(),))).images[0]
    assert diff(out, plain) > 0.5
    assert np.array_equal(run(eng, base).images[0], plain)


def test_adapter_and_encoder_pins_cover_what_loads(tiny_cache: Path, tmp_path: Path) -> None:
    """An adapter file and an encoder folder inside one source (the h94 layout, as ``dir:``)
    each hash as what the engine loads: the file's sha256, the folder's weights manifest.
    Pinned so, the job runs and reports both; a wrong pin on either refuses it by name."""
    studio = tmp_path / "ip-adapter"
    (studio / "models").mkdir(parents=True)
    adapter_file = studio / "models" / "ip-adapter_sd15.safetensors"
    shutil.copy(ensure_part(tiny_cache, "tiny:sd15-ip-adapter") / ADAPTER_FILE, adapter_file)
    encoder = studio / "models" / "image_encoder"
    shutil.copytree(ensure_part(tiny_cache, "tiny:sd15-image-encoder"), encoder)
    pins = {
        "house-ip": hashlib.sha256(adapter_file.read_bytes()).hexdigest(),
        "house-encoder": hashlib.sha256(
            "".join(
                f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(encoder)}\n"
                for f in sorted(encoder.glob("*.safetensors"))
            ).encode()
        ).hexdigest(),
    }

    def registry(wrong: str = "") -> Registry:
        pin = {name: "0" * 64 if name == wrong else digest for name, digest in pins.items()}
        path = tmp_path / f"models-{wrong or 'right'}.toml"
        path.write_text(f"""
default = "b"
[models.b]
kind = "base"
family = "sd15"
source = "dir:{tiny_dir(tiny_cache, "sd15")}"
[models.house-ip]
kind = "ip_adapter"
family = "sd15"
source = "dir:{studio}"
weight = "models/ip-adapter_sd15.safetensors"
encoder = "house-encoder"
sha256 = "{pin["house-ip"]}"
[models.house-encoder]
kind = "image_encoder"
family = "sd15"
source = "dir:{studio}"
weight = "models/image_encoder"
sha256 = "{pin["house-encoder"]}"
""")
        return Registry.load(path)

    directed = replace(job(seed=2, model="b", steps=2), references=(ref(),))
    out = run(Engine(registry(), cache_dir=tiny_cache, device="cpu"), directed)
    assert {k: out.hashes[k] for k in pins} == pins and out.images[0].shape == (64, 64, 3)
    for wrong in pins:
        eng = Engine(registry(wrong), cache_dir=tiny_cache, device="cpu")
        with pytest.raises(ModelUnavailable) as caught:
            run(eng, directed)
        error = caught.value
        assert (error.code, error.field, error.model) == (
            ErrorCode.MODEL_UNAVAILABLE, "inputs.references", wrong
        )  # fmt: skip
        assert f"{wrong!r}" in error.message and "re-approved" in error.message
        assert run(eng, job(seed=2, model="b", steps=2)).images  # no reference: no adapter
