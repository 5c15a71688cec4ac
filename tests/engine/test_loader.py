"""Sources, model switching and derived pipelines, with real tiny weights and no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from sfumato.engine import Engine, ModelUnavailable, UnknownModel, ensure_tiny
from sfumato.engine.loader import DTYPE_KWARG, LoadedModel
from sfumato.protocol import ErrorCode, JobRejected, Task
from sfumato.registry import Registry

from .helpers import box_mask, job, picture, run


def _registry(tmp_path: Path, body: str, default: str = "m") -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(f'default = "{default}"\ninclude_builtin = true\n{body}')
    return Registry.load(path)


def _engine(registry: Registry, cache: Path) -> Engine:
    return Engine(registry, cache_dir=cache, device="cpu")


def test_hub_model_missing_offline_says_how_to_get_it(tmp_path: Path, tiny_cache: Path) -> None:
    # tests/conftest.py sets it before anything imports huggingface_hub: never a skip
    assert huggingface_hub.constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE=1 must be set in tests"
    reg = _registry(
        tmp_path,
        '[models.m]\nkind = "base"\nfamily = "sdxl"\nsource = "hub:sfumato-tests/not-cached"\n',
    )
    with pytest.raises(ModelUnavailable) as caught:
        _engine(reg, tiny_cache).load("m")
    message = str(caught.value)
    assert "sfumato-tests/not-cached" in message
    assert "download" in message and "dir:" in message
    assert caught.value.model == "m"


def test_missing_dir_is_unavailable(tmp_path: Path, tiny_cache: Path) -> None:
    reg = _registry(tmp_path, '[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "dir:gone"\n')
    with pytest.raises(ModelUnavailable, match=r"does not exist"):
        _engine(reg, tiny_cache).load("m")


def test_dir_without_model_index_is_unavailable(tmp_path: Path, tiny_cache: Path) -> None:
    (tmp_path / "empty").mkdir()
    reg = _registry(tmp_path, '[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "dir:empty"\n')
    with pytest.raises(ModelUnavailable, match=r"model_index\.json"):
        _engine(reg, tiny_cache).load("m")


def test_missing_checkpoint_file_is_unavailable(tmp_path: Path, tiny_cache: Path) -> None:
    body = '[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "file:x.safetensors"\n'
    with pytest.raises(ModelUnavailable, match=r"x\.safetensors"):
        _engine(_registry(tmp_path, body), tiny_cache).load("m")


def test_dir_source_loads_the_same_weights_as_tiny(tmp_path: Path, tiny_cache: Path) -> None:
    shutil.copytree(ensure_tiny(tiny_cache, "sd15"), tmp_path / "copy")
    reg = _registry(tmp_path, '[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "dir:copy"\n')
    eng = _engine(reg, tiny_cache)
    from_dir = run(eng, job(seed=11, model="m"))
    from_tiny = run(eng, job(seed=11, model="tiny-sd"))
    assert from_dir.model == "m" and not from_dir.tiny
    assert np.array_equal(from_dir.images[0], from_tiny.images[0])


def test_unknown_model_lists_the_known_ones(tiny_cache: Path) -> None:
    eng = _engine(Registry.load(None), tiny_cache)
    with pytest.raises(UnknownModel, match="tiny-sd"):
        eng.load("nope")
    with pytest.raises(UnknownModel):
        run(eng, job(model="nope"))


def test_non_base_entry_is_refused(tmp_path: Path, tiny_cache: Path) -> None:
    body = (
        '[models.m]\nkind = "controlnet"\nfamily = "sd15"\ncontrol = "depth"\nsource = "dir:cn"\n'
    )
    eng = _engine(_registry(tmp_path, body, default="tiny-sd"), tiny_cache)
    with pytest.raises(JobRejected, match=r"params\.model 'm' is a controlnet") as caught:
        eng.load("m")
    assert (caught.value.code, caught.value.field) == (ErrorCode.UNKNOWN_MODEL, "params.model")


def test_switching_models_replaces_the_loaded_one(tiny_cache: Path) -> None:
    eng = _engine(Registry.load(None), tiny_cache)
    assert eng.model is None and "no model loaded" in eng.describe()
    statuses: list[str] = []
    eng.load("tiny-sd", on_status=statuses.append)
    assert statuses and eng.model == "tiny-sd"
    assert "noise" in eng.describe() and "cpu" in eng.describe() and "float32" in eng.describe()
    again: list[str] = []
    eng.load("tiny-sd", on_status=again.append)
    assert again == []  # idempotent: nothing loaded twice
    out = run(eng, job(model="tiny-sdxl", seed=1))
    assert eng.model == "tiny-sdxl" and out.model == "tiny-sdxl"
    assert "sdxl" in eng.describe()
    eng.unload()
    assert eng.model is None


def test_derived_pipelines_share_the_base_weights(engine: Engine) -> None:
    loaded = engine._loader.current
    assert loaded is not None
    refine, inpaint = loaded.pipeline(Task.REFINE), loaded.pipeline(Task.INPAINT)
    assert refine.unet is loaded.base.unet and inpaint.vae is loaded.base.vae
    assert loaded.pipeline(Task.REFINE) is refine  # derived once, then cached


def test_sdxl_tasks_run(tiny_cache: Path) -> None:
    eng = _engine(Registry.load(None), tiny_cache)
    image = picture(64, 80)
    mask = box_mask(64, 80, (8, 8, 40, 40))
    gen = run(eng, job(model="tiny-sdxl", width=80, height=64, seed=1, negative="blurry"))
    ref = run(eng, job(Task.REFINE, image=image, model="tiny-sdxl", seed=1, strength=0.7))
    inp = run(eng, job(Task.INPAINT, image=image, mask=mask, model="tiny-sdxl", seed=1))
    assert [o.images[0].shape for o in (gen, ref, inp)] == [(64, 80, 3)] * 3
    keep = mask[:, :, 0] == 0
    assert np.array_equal(inp.images[0][keep], image[keep])


def test_deriving_keeps_a_half_precision_base_in_half(tiny_cache: Path) -> None:
    # from_pipe casts shared modules to float32 unless told the dtype; on a GPU that would
    # silently double the memory of the loaded model. Weights in fp16 on the CPU show it.
    folder = ensure_tiny(tiny_cache, "sd15")
    base = StableDiffusionPipeline.from_pretrained(folder, **{DTYPE_KWARG: torch.float16})
    loaded = LoadedModel(Registry.load(None).get("tiny-sd"), base, "cpu", torch.float16)
    derived = loaded.pipeline(Task.INPAINT)
    assert base.unet.dtype == torch.float16 and derived.unet.dtype == torch.float16
