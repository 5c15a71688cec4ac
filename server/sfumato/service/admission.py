"""What a job may use, decided before it is queued: every registry name it names (model,
LoRAs, the ControlNets its controls need) must exist, fit the model's family, and be approved.
A refusal names the entry, the field and the rule, and costs no one else anything."""

from __future__ import annotations

from ..protocol import ErrorCode, Job, JobRejected
from ..registry import LoraMismatch, ModelEntry, Registry, UnknownModel


class Refusal(JobRejected):
    """A job admission will not queue; its message starts with the field it is about."""

    field: str

    def __init__(self, code: ErrorCode, message: str, field: str) -> None:
        super().__init__(code, message, field=field)


def admit(job: Job, registry: Registry, default_model: str) -> ModelEntry:
    """The base model entry the job will run on; raises :class:`Refusal`. Every message
    starts with the field path it is about (``params.loras[1].name: …``), so a client that
    shows only the text still points at the right widget."""
    name = job.params.model or default_model
    model = _get(registry, name, "params.model")
    if model.kind != "base":
        raise _refuse(
            ErrorCode.UNKNOWN_MODEL,
            f"{name!r} is a {model.kind}, not a base model; pick a base model from "
            "`sfumato models`",
            "params.model",
        )
    used = [(model, "params.model")]
    for n, lora in enumerate(job.params.loras):
        field = f"params.loras[{n}].name"
        try:
            used.append((registry.lora(lora.name, model.family), field))
        except UnknownModel:
            loras = ", ".join(registry.of_kind("lora", model.family)) or "(none)"
            raise _refuse(
                ErrorCode.UNKNOWN_MODEL,
                f"no LoRA {lora.name!r} in this server's registry; LoRAs for {model.family}: "
                f"{loras} (see `sfumato models`)",
                field,
            ) from None
        except LoraMismatch as exc:  # not a LoRA, or one of another family
            message = str(exc).removeprefix("params.loras: ")
            raise _refuse(ErrorCode.UNSUPPORTED, message, field) from None
    for n, control in enumerate(job.controls):
        field = f"inputs.controls[{n}].kind"
        try:
            used.append(
                (registry.controlnet(model.family, control.kind.value, tiny=model.tiny), field)
            )
        except UnknownModel as exc:
            raise _refuse(ErrorCode.UNKNOWN_MODEL, str(exc), field) from None
    for entry, field in used:
        if not entry.approved:
            raise _refuse(
                ErrorCode.NOT_APPROVED,
                f"{entry.kind} {entry.name!r} is not approved in this server's registry "
                f"(license: {entry.license or 'unknown'}); jobs may use approved entries only. "
                "Pick an approved one from `sfumato models`, or have it approved "
                f"(approved = true under [models.{entry.name}])",
                field,
            )
    return model


def _refuse(code: ErrorCode, message: str, field: str) -> Refusal:
    return Refusal(code, f"{field}: {message}", field)


def _get(registry: Registry, name: str, field: str) -> ModelEntry:
    try:
        return registry.get(name)
    except UnknownModel as exc:
        raise _refuse(ErrorCode.UNKNOWN_MODEL, str(exc), field) from None
