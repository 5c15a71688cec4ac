"""Admission (pure): what a job names from the registry is checked before it queues, and each
refusal names the exact field path, in ``field`` and at the start of the message (issue 9.22)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import Array, Control, ControlKind, ErrorCode, Job, JobParams, LoraRef, Task
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


# ---------------------------------------------------------------- controls, approval, order

RULES = Registry.parse("""
default = "tiny"
[models.tiny]
kind = "base"
family = "sd15"
source = "tiny:sd15"
[models.real]
kind = "base"
family = "sd15"
source = "dir:/nowhere"
[models.unvetted-base]
kind = "base"
family = "sd15"
source = "tiny:sd15"
approved = false
[models.style]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
[models.shady-style]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
approved = false
[models.xl-style]
kind = "lora"
family = "sdxl"
source = "tiny:sdxl-lora-style"
[models.tiny-depth]
kind = "controlnet"
family = "sd15"
control = "depth"
source = "tiny:sd15-controlnet-depth"
[models.tiny-canny]
kind = "controlnet"
family = "sd15"
control = "canny"
source = "tiny:sd15-controlnet-canny"
approved = false
[models.tiny-canny-vetted]
kind = "controlnet"
family = "sd15"
control = "canny"
source = "tiny:sd15-controlnet-canny"
[models.tiny-pose]
kind = "controlnet"
family = "sd15"
control = "pose"
source = "tiny:sd15-controlnet-pose"
approved = false
[models.real-depth]
kind = "controlnet"
family = "sd15"
control = "depth"
source = "dir:/nowhere-depth"
""")
KINDS = (ControlKind.DEPTH, ControlKind.CANNY, ControlKind.POSE, ControlKind.SHUFFLE)
PIXELS = Array.from_numpy(np.zeros((8, 8, 3), np.uint8))


def expected_refusal(
    model: str | None, loras: list[str], kinds: list[ControlKind]
) -> tuple[ErrorCode, str] | None:
    """The rule as docs/protocol.md states it: every name is looked up in order (model, LoRAs,
    controls) and the first that does not exist or fit is refused; only then is approval
    checked, in the same order; a control's ControlNet is an approved one where one fits."""
    name = model or "tiny"
    if name not in RULES.entries or RULES.entries[name].kind != "base":
        return ErrorCode.UNKNOWN_MODEL, "params.model"
    base = RULES.entries[name]
    used = [(base.approved, "params.model")]
    for n, lora in enumerate(loras):
        entry = RULES.entries.get(lora)
        if entry is None:
            return ErrorCode.UNKNOWN_MODEL, f"params.loras[{n}].name"
        if entry.kind != "lora" or entry.family != base.family:
            return ErrorCode.UNSUPPORTED, f"params.loras[{n}].name"
        used.append((entry.approved, f"params.loras[{n}].name"))
    for n, kind in enumerate(kinds):
        fits = [e for e in RULES.entries.values()
                if e.kind == "controlnet" and e.control == kind.value and e.tiny == base.tiny]  # fmt: skip
        if not fits:
            return ErrorCode.UNKNOWN_MODEL, f"inputs.controls[{n}].kind"
        used.append((any(e.approved for e in fits), f"inputs.controls[{n}].kind"))
    for approved, field in used:
        if not approved:
            return ErrorCode.NOT_APPROVED, field
    return None


@FAST
@given(
    st.sampled_from([None, "tiny", "real", "unvetted-base", "style", "tiny-depth", "gone"]),
    st.lists(st.sampled_from(["style", "shady-style", "xl-style", "tiny", "nope"]), max_size=3),
    st.lists(st.sampled_from(KINDS), max_size=3),
)
def test_the_first_name_that_breaks_a_rule_is_refused_at_its_own_field(
    model: str | None, loras: list[str], kinds: list[ControlKind]
) -> None:
    params = JobParams(width=64, height=64, model=model,
                       loras=tuple(LoraRef(n, 0.5) for n in loras))  # fmt: skip
    controls = tuple(Control(kind, PIXELS) for kind in kinds)
    job = Job("j1", Task.GENERATE, params, controls=controls)
    expected = expected_refusal(model, loras, kinds)
    if expected is None:
        assert admit(job, RULES, "tiny") is RULES.get(model or "tiny")
        return
    with pytest.raises(Refusal) as caught:
        admit(job, RULES, "tiny")
    refusal = caught.value
    assert (refusal.code, refusal.field) == expected
    assert refusal.message.startswith(f"{refusal.field}: ")
    if refusal.code is ErrorCode.NOT_APPROVED:
        assert "approved = true" in refusal.message  # how to change it, not only that it failed


def test_a_tiny_base_never_gets_a_real_controlnet_nor_the_other_way() -> None:
    canny = Job("j1", Task.GENERATE, JobParams(width=64, height=64, model="real"),
                  controls=(Control(ControlKind.CANNY, PIXELS),))  # fmt: skip
    with pytest.raises(Refusal) as caught:
        admit(canny, RULES, "tiny")  # only tiny canny ControlNets are registered
    assert (caught.value.code, caught.value.field) == (
        ErrorCode.UNKNOWN_MODEL,
        "inputs.controls[0].kind",
    )
    depth = Job("j1", Task.GENERATE, JobParams(width=64, height=64, model="real"),
                controls=(Control(ControlKind.DEPTH, PIXELS),))  # fmt: skip
    assert admit(depth, RULES, "tiny").name == "real"
