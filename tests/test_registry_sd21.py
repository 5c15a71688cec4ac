"""The sd21 family (SD 2.x: SD-Turbo): a registry family for base models only, with no tiny
parts, whose jobs are refused other families' LoRAs, ControlNets and IP-Adapters (issue 12.2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    ErrorCode,
    Job,
    JobParams,
    JobRejected,
    LoraRef,
    Task,
)
from sfumato.registry import FAMILIES, TINY_SOURCES, Registry, RegistryError
from sfumato.registry.adapters import ip_adapter
from sfumato.service.admission import Refusal, admit
from sfumato.training import defaults_for
from sfumato.training.options import OptionError

from .protocol.strategies import FAST

PIXELS = Array.from_numpy(np.zeros((8, 8, 3), np.uint8))


def test_sd_turbo_is_a_builtin_unapproved_adversarial_sd21_base() -> None:
    reg = Registry.load(None)
    entry = reg.get("sd-turbo")
    assert (entry.kind, entry.family, entry.source) == ("base", "sd21", "hub:stabilityai/sd-turbo")
    assert (entry.turbo, entry.license, entry.approved) == (
        "adversarial",
        "sai-nc-community",
        False,
    )
    assert not entry.tiny
    info = {i.name: i for i in reg.infos()}["sd-turbo"]
    assert info.family == "sd21" and not info.approved


def test_sd21_is_a_family_without_tiny_parts() -> None:
    assert "sd21" in FAMILIES
    assert {family for _, family in TINY_SOURCES.values()} == {"sd15", "sdxl"}
    assert not [name for name in TINY_SOURCES if "sd21" in name]
    # no built-in part (ControlNet, LoRA, preview, adapter) claims sd21: only the base
    reg = Registry.load(None)
    assert [e.name for e in reg.entries.values() if e.family == "sd21"] == ["sd-turbo"]
    with pytest.raises(RegistryError, match=r"family is 'sd21'; set family = \"sd15\""):
        Registry.parse('[models.m]\nkind = "base"\nfamily = "sd21"\nsource = "tiny:sd15"\n')


SD21 = Registry.parse("""
default = "turbo"
[models.turbo]
kind = "base"
family = "sd21"
source = "hub:stabilityai/sd-turbo"
turbo = "adversarial"
[models.style]
kind = "lora"
family = "sd15"
source = "hub:someone/sd15-style"
[models.depth]
kind = "controlnet"
family = "sd15"
control = "depth"
source = "hub:lllyasviel/control_v11f1p_sd15_depth"
""")


@FAST
@given(st.sampled_from(list(ControlKind)), st.sampled_from([None, "turbo"]))
def test_an_sd21_control_job_gets_the_typed_no_controlnet_refusal(
    kind: ControlKind, model: str | None
) -> None:
    job = Job("j1", Task.GENERATE, JobParams(width=64, height=64, model=model),
              controls=(Control(kind, PIXELS),))  # fmt: skip
    with pytest.raises(Refusal) as caught:
        admit(job, SD21, "turbo")
    refusal = caught.value
    assert (refusal.code, refusal.field) == (ErrorCode.UNKNOWN_MODEL, "inputs.controls[0].kind")
    assert f"no {kind.value} ControlNet is registered for the sd21 family" in refusal.message
    assert 'family = "sd21"' in refusal.message  # the fix


def test_an_sd15_lora_on_sd21_is_refused_naming_both_families() -> None:
    job = Job("j1", Task.GENERATE,
              JobParams(width=64, height=64, model="turbo", loras=(LoraRef("style", 0.5),)))  # fmt: skip
    with pytest.raises(Refusal) as caught:
        admit(job, SD21, "turbo")
    refusal = caught.value
    assert (refusal.code, refusal.field) == (ErrorCode.UNSUPPORTED, "params.loras[0].name")
    assert "LoRA for sd15" in refusal.message and "sd21" in refusal.message


def test_an_sd21_reference_job_is_refused_for_want_of_an_ip_adapter() -> None:
    reg = Registry.load(None)
    with pytest.raises(JobRejected, match=r"no IP-Adapter is registered for the sd21 family"):
        ip_adapter(reg, "sd21", tiny=False)


def test_sd21_lora_training_is_refused_clearly() -> None:
    with pytest.raises(OptionError, match=r"training an sd21 LoRA is not supported yet"):
        defaults_for("sd21")
    assert defaults_for("sd15").resolution == 512  # the others keep their defaults
