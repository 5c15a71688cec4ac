"""What a job may use, decided before it is queued: every registry name it names (model,
LoRAs, the ControlNets its controls need) must exist, fit the model's family, and be approved.
A refusal names the entry, the field and the rule, and costs no one else anything.

And its result must fit one message: a server sends no message over ``max_message_bytes``
(the limit it announces, docs/protocol.md section 7), so a job whose result could not be sent
is refused here, before it costs a GPU minute, instead of failing after it ran."""

from __future__ import annotations

from dataclasses import replace

from ..protocol import ErrorCode, Job, JobRejected, Task
from ..protocol.messages import RESULT_HEADER_BYTES
from ..registry import LoraMismatch, ModelEntry, Registry, UnknownModel
from ..registry.adapters import ip_adapter


class Refusal(JobRejected):
    """A job admission will not queue; its message starts with the field it is about."""

    field: str

    def __init__(self, code: ErrorCode, message: str, field: str) -> None:
        super().__init__(code, message, field=field)


MIB = 1024 * 1024


def result_bytes(job: Job) -> int:
    """The bound admission checks: :meth:`sfumato.protocol.Job.result_bytes` (one place, so a
    host can check the same before it sends)."""
    return job.result_bytes()


def check_result_fits(job: Job, max_message_bytes: int) -> None:
    """Refuse a job whose result could not be sent in one message; the message names the
    field to change and how far (the variants that fit, or a smaller size, or no files)."""
    need = result_bytes(job)
    if need <= max_message_bytes:
        return
    params, (width, height) = job.params, job.output_size()
    per_variant = (need - RESULT_HEADER_BYTES) // params.variants
    fit = (max_message_bytes - RESULT_HEADER_BYTES) // per_variant
    without_files = result_bytes(_replace_files(job)) <= max_message_bytes
    if params.variants > 1 and fit >= 1:
        field, fix = "params.variants", f"ask for at most {fit} variant{'s' if fit > 1 else ''}"
    elif params.files and without_files:
        field, fix = "params.files", "leave params.files off (the images still come)"
    else:
        field = {Task.GENERATE: "params.width", Task.UPSCALE: "params.scale",
                 Task.OUTPAINT: "params.expand", Task.MULTIVIEW: "inputs.position",
                 }.get(job.task, "inputs.image")  # fmt: skip
        fix = "ask for a smaller size" + (" or fewer variants" if params.variants > 1 else "")
        fix += " and leave params.files off" if params.files else ""
    what = f"{params.variants} variant{'s' if params.variants > 1 else ''} of {width}×{height}"
    raise Refusal(
        ErrorCode.RESULT_TOO_LARGE,
        f"{field}: the result of this job would take up to {need / MIB:.1f} MiB ({what}"
        f"{', with their PNG files' if params.files else ''}), more than the "
        f"{max_message_bytes / MIB:.1f} MiB this server sends in one message "
        f"(limits.max_message_bytes); {fix}",
        field,
    )


def _replace_files(job: Job) -> Job:
    return replace(job, params=replace(job.params, files=False))


def admit(
    job: Job, registry: Registry, default_model: str, max_message_bytes: int | None = None
) -> ModelEntry:
    """The base model entry the job will run on; raises :class:`Refusal`. Every message
    starts with the field path it is about (``params.loras[1].name: …``), so a client that
    shows only the text still points at the right widget. With ``max_message_bytes``, the
    job's result must fit one message of that size too."""
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
    # Region LoRAs act on the whole image (docs/protocol.md 4.2.6): checked like the job's own.
    named = [(lora, f"params.loras[{n}].name") for n, lora in enumerate(job.params.loras)]
    named += [
        (lora, f"inputs.regions[{n}].loras[{k}].name")
        for n, region in enumerate(job.regions)
        for k, lora in enumerate(region.loras)
    ]
    for lora, field in named:
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
    if job.references:
        try:
            used += [
                (e, "inputs.references")
                for e in ip_adapter(registry, model.family, tiny=model.tiny)
            ]
        except JobRejected as exc:
            raise _refuse(exc.code, exc.message, "inputs.references") from None
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
    if max_message_bytes is not None:
        check_result_fits(job, max_message_bytes)
    return model


def _refuse(code: ErrorCode, message: str, field: str) -> Refusal:
    return Refusal(code, f"{field}: {message}", field)


def _get(registry: Registry, name: str, field: str) -> ModelEntry:
    try:
        return registry.get(name)
    except UnknownModel as exc:
        raise _refuse(ErrorCode.UNKNOWN_MODEL, str(exc), field) from None
