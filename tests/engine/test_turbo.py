"""Few-step models (issue 12.2): the registry's turbo entries, and the engine sampling them as
they need — adversarial (SD-/SDXL-Turbo): 1–4 steps, guidance 0, trailing Euler ancestral;
lcm (an LCM LoRA): 2–8 steps, LCM scheduler, guidance ≤ 2 — on the tiny stand-ins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler

from sfumato.engine import Engine
from sfumato.engine.turbo import SAMPLINGS, scheduled
from sfumato.protocol import (
    ErrorCode,
    JobRejected,
    LoraRef,
    ModelInfo,
    decode_server_message,
    encode_bytes,
)
from sfumato.protocol import Models as ModelsMessage
from sfumato.registry import Registry, RegistryError

from .helpers import job, run

LCM = (LoraRef("tiny-sd-lcm", 1.0),)


@pytest.fixture(scope="module")
def turbo_engine(tiny_cache: Path) -> Engine:
    eng = Engine(Registry.load(None), cache_dir=tiny_cache, device="cpu")
    eng.load("tiny-sd-turbo")
    return eng


def test_the_registry_has_real_turbo_entries() -> None:
    registry = Registry.load(None)
    sdxl, lcm = registry.get("sdxl-turbo"), registry.get("lcm-lora-sd15")
    assert (sdxl.source, sdxl.family, sdxl.turbo) == (
        "hub:stabilityai/sdxl-turbo", "sdxl", "adversarial"
    )  # fmt: skip
    assert (lcm.source, lcm.kind, lcm.turbo) == (
        "hub:latent-consistency/lcm-lora-sdv1-5", "lora", "lcm"
    )  # fmt: skip
    assert sdxl.license and lcm.license
    info = registry.get("tiny-sd-turbo").info()
    wire = decode_server_message(encode_bytes(ModelsMessage((info,), "tiny-sd-turbo")))
    assert isinstance(wire, ModelsMessage) and wire.models[0].turbo == "adversarial"
    assert "turbo" not in encode_bytes(ModelsMessage((ModelInfo("m", "sd15", "base"),))).decode(
        "latin-1"
    )


@pytest.mark.parametrize(
    ("kind", "turbo"), [("lora", "adversarial"), ("base", "lcm"), ("base", "fast")]
)
def test_turbo_on_the_wrong_kind_is_refused(tmp_path: Path, kind: str, turbo: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        f'default = "m"\n[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'
        f'[models.x]\nkind = "{kind}"\nfamily = "sd15"\nsource = "tiny:sd15'
        f'{"-lora-style" if kind == "lora" else ""}"\nturbo = "{turbo}"\n'
    )
    with pytest.raises(RegistryError, match="turbo must be one of"):
        Registry.load(path)


def test_a_turbo_model_runs_with_guidance_zero_whatever_is_asked(turbo_engine: Engine) -> None:
    asked_seven = run(turbo_engine, job(model="tiny-sd-turbo", steps=1, guidance=7.0, seed=4))
    asked_zero = run(turbo_engine, job(model="tiny-sd-turbo", steps=1, guidance=0.0, seed=4))
    assert np.array_equal(asked_seven.images[0], asked_zero.images[0])
    own = run(turbo_engine, job(model="tiny-sd", steps=1, guidance=7.0, seed=4))  # same weights
    assert not np.array_equal(asked_seven.images[0], own.images[0])


def test_a_turbo_model_refuses_steps_it_cannot_run(turbo_engine: Engine) -> None:
    with pytest.raises(JobRejected) as info:
        run(turbo_engine, job(model="tiny-sd-turbo", steps=5))
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_FIELD, "params.steps")
    assert "1–4 steps" in info.value.message and "set params.steps to 4" in info.value.message


def test_an_lcm_lora_runs_its_steps_with_guidance_at_most_two(turbo_engine: Engine) -> None:
    with pytest.raises(JobRejected) as info:
        run(turbo_engine, job(model="tiny-sd", steps=1, loras=LCM))
    assert info.value.field == "params.steps" and "2–8" in info.value.message
    high = run(turbo_engine, job(model="tiny-sd", steps=2, guidance=7.0, seed=1, loras=LCM))
    two = run(turbo_engine, job(model="tiny-sd", steps=2, guidance=2.0, seed=1, loras=LCM))
    plain = run(turbo_engine, job(model="tiny-sd", steps=2, guidance=7.0, seed=1))
    assert np.array_equal(high.images[0], two.images[0])
    assert not np.array_equal(high.images[0], plain.images[0])


def test_the_scheduler_is_swapped_for_the_job_only(turbo_engine: Engine) -> None:
    pipe = turbo_engine._loader.load(turbo_engine.registry.get("tiny-sd"), None).pipeline(
        job().task
    )
    own = pipe.scheduler
    with scheduled(pipe, SAMPLINGS["adversarial"]):
        assert isinstance(pipe.scheduler, EulerAncestralDiscreteScheduler)
        assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler is own
    with pytest.raises(RuntimeError), scheduled(pipe, SAMPLINGS["lcm"]):
        assert isinstance(pipe.scheduler, LCMScheduler)
        raise RuntimeError("a failed job")
    assert pipe.scheduler is own
