"""LoRAs switched by weight without reloading the base, and seamless tiling that wraps exactly
and never leaks into the next job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from sfumato.engine import Engine, UnknownModel
from sfumato.engine.tiling import tiled
from sfumato.protocol import LoraRef, Tile
from sfumato.registry import Registry

from .helpers import job, run

TWO_LORAS = """include_builtin = true
[models.style-b]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
"""


@pytest.fixture(scope="module")
def lora_engine(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = tmp_path_factory.mktemp("reg") / "models.toml"
    path.write_text(TWO_LORAS)
    eng = Engine(Registry.load(path), cache_dir=tiny_cache, device="cpu")
    eng.load("tiny-sd")
    return eng


def test_weight_zero_is_the_base_exactly_and_weight_one_differs(lora_engine: Engine) -> None:
    base = run(lora_engine, job(seed=2)).images[0]
    zero = run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sd-style", 0.0),))).images[0]
    one = run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sd-style", 1.0),))).images[0]
    assert np.array_equal(zero, base)
    assert np.abs(one.astype(int) - base).mean() > 2
    after = run(lora_engine, job(seed=2)).images[0]  # no LoRAs: disabled, the base again
    assert np.array_equal(after, base)


def test_switching_loras_never_reloads_the_base(lora_engine: Engine) -> None:
    loaded = lora_engine._loader.current
    assert loaded is not None
    unet, pipe = id(loaded.base.unet), id(loaded.base)
    a = run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sd-style", 1.0),))).images[0]
    b = run(lora_engine, job(seed=2, loras=(LoraRef("style-b", 0.5),))).images[0]
    both = (LoraRef("tiny-sd-style", 1.0), LoraRef("style-b", 0.5))
    c = run(lora_engine, job(seed=2, loras=both)).images[0]
    again = run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sd-style", 1.0),))).images[0]
    current = lora_engine._loader.current
    assert current is loaded and id(current.base) == pipe and id(current.base.unet) == unet
    assert current.loras == {"tiny-sd-style", "style-b"}  # each loaded once
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(a, again)


def test_unknown_or_wrong_family_lora_is_refused(lora_engine: Engine) -> None:
    with pytest.raises(UnknownModel, match="'nope'"):
        run(lora_engine, job(seed=2, loras=(LoraRef("nope"),)))
    with pytest.raises(ValueError, match="LoRA for sdxl, but the model is sd15"):
        run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sdxl-style"),)))
    with pytest.raises(ValueError, match="is a base, not a LoRA"):
        run(lora_engine, job(seed=2, loras=(LoraRef("tiny-sd"),)))


@pytest.fixture(scope="module")
def pipe(tiny_cache: Path) -> StableDiffusionPipeline:
    p = StableDiffusionPipeline.from_pretrained(tiny_cache / "tiny" / "sd15")
    p.set_progress_bar_config(disable=True)
    return p


def _decode(pipe: StableDiffusionPipeline, latents: torch.Tensor) -> np.ndarray:
    out = pipe("a wall", num_inference_steps=2, width=64, height=64, latents=latents.clone(),
               output_type="np", guidance_scale=7.0)  # fmt: skip
    return np.asarray(out.images[0], np.float64)


@pytest.mark.parametrize("tile", [Tile.XY, Tile.X])
def test_tiled_pipeline_is_shift_equivariant_on_the_wrapped_axes(
    pipe: StableDiffusionPipeline, tile: Tile
) -> None:
    # Shifts by 2 latent pixels: the UNet halves the latents once, so a shift stays whole there.
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    with tiled((pipe.unet, pipe.vae), tile):
        image = _decode(pipe, noise)
        shifted_x = _decode(pipe, torch.roll(noise, 2, dims=3))
        shifted_y = _decode(pipe, torch.roll(noise, 2, dims=2))
    x_error = np.abs(np.roll(image, 16, axis=1) - shifted_x).max()
    y_error = np.abs(np.roll(image, 16, axis=0) - shifted_y).max()
    assert x_error < 1e-3  # the left edge continues into the right edge
    if tile is Tile.XY:
        assert y_error < 1e-3
    else:
        assert y_error > 1e-2  # x-only: top and bottom do not wrap (panoramas)
    plain = _decode(pipe, noise)  # outside the context: zero padding, no wrap
    assert (
        np.abs(np.roll(plain, 16, axis=1) - _decode(pipe, torch.roll(noise, 2, dims=3))).max()
        > 1e-2
    )


def test_tiled_job_wraps_at_the_edges_and_does_not_leak(engine: Engine) -> None:
    before = run(engine, job(seed=9, width=128, height=64)).images[0]
    wrapped = run(engine, job(seed=9, width=128, height=64, tile=Tile.XY)).images[0].astype(float)
    after = run(engine, job(seed=9, width=128, height=64)).images[0]
    assert np.array_equal(before, after)
    loaded = engine._loader.current
    assert loaded is not None
    convs = [m for m in loaded.base.unet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all("_conv_forward" not in c.__dict__ for c in convs)
    assert any(c.padding != (0, 0) for c in convs)
    # The seam (last column → first column) is no rougher than neighbouring columns inside.
    inside = np.abs(np.diff(wrapped, axis=1)).mean()
    seam = np.abs(wrapped[:, 0] - wrapped[:, -1]).mean()
    vertical_seam = np.abs(wrapped[0] - wrapped[-1]).mean()
    assert seam < 1.5 * inside and vertical_seam < 1.5 * np.abs(np.diff(wrapped, axis=0)).mean()
