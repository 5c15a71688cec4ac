"""Admission (pure): what a job names from the registry is checked before it queues, and each
refusal names the exact field path, in ``field`` and at the start of the message (issue 9.22)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import ErrorCode, Job, JobParams, LoraRef, Task
from sfumato.registry import Registry
from sfumato.service.admission import Refusal, admit

from ..protocol.strategies import FAST

REGISTRY = Registry.parse("""
default = "base"
[models.base]
kind = "base"
family = "sd15"
source = "tiny:sd15"
[models.other-base]
kind = "base"
family = "sdxl"
source = "tiny:sdxl"
[models.style]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
[models.grain]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
[models.xl-style]
kind = "lora"
family = "sdxl"
source = "tiny:sdxl-lora-style"
[models.unvetted]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
approved = false
""")

# name → (code, what the message must say) for the LoRA names that are refused
BAD = {
    "nope": (ErrorCode.UNKNOWN_MODEL, "no LoRA 'nope'"),
    "xl-style": (ErrorCode.UNSUPPORTED, "LoRA for sdxl"),
    "other-base": (ErrorCode.UNSUPPORTED, "not a LoRA"),
    "unvetted": (ErrorCode.NOT_APPROVED, "not approved"),
}
GOOD = ("style", "grain")


def job(*names: str, model: str | None = None) -> Job:
    loras = tuple(LoraRef(n, 0.5) for n in names)
    return Job("j1", Task.GENERATE, JobParams(width=64, height=64, model=model, loras=loras))


@FAST
@given(st.lists(st.sampled_from([*GOOD, *BAD]), unique=True, max_size=6))
def test_each_lora_refusal_names_its_own_path(names: list[str]) -> None:
    bad = [i for i, n in enumerate(names) if n in BAD]
    if not bad:
        assert admit(job(*names), REGISTRY, "base").name == "base"
        return
    with pytest.raises(Refusal) as caught:
        admit(job(*names), REGISTRY, "base")
    refusal = caught.value
    # unknown names and wrong kinds are found in list order; approval is checked after all
    looked_up = [i for i in bad if names[i] != "unvetted"]
    first = looked_up[0] if looked_up else bad[0]
    code, says = BAD[names[first]]
    field = f"params.loras[{first}].name"
    assert (refusal.code, refusal.field) == (code, field)
    assert refusal.message.startswith(f"{field}: ") and says in refusal.message
    if code is ErrorCode.UNKNOWN_MODEL:
        assert "grain, style" in refusal.message  # what to pick instead: this family's LoRAs


@pytest.mark.parametrize(
    ("model", "code"),
    [("missing", ErrorCode.UNKNOWN_MODEL), ("style", ErrorCode.UNKNOWN_MODEL)],
)
def test_model_refusals_name_params_model(model: str, code: ErrorCode) -> None:
    with pytest.raises(Refusal) as caught:
        admit(job(model=model), REGISTRY, "base")
    assert (caught.value.code, caught.value.field) == (code, "params.model")
    assert caught.value.message.startswith("params.model: ")
