"""What one server offers a host — capabilities, limits, models, LoRAs — checked before a job
is sent, and the history record a host keeps of a finished job. Pure, like ``hostsession``,
which re-exports these names; split from it to keep each module about one thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .protocol import (
    Job,
    JobParams,
    Limits,
    ModelInfo,
    ProtocolError,
    Result,
    SfumatoError,
    SystemInfo,
    Task,
    Tile,
    Welcome,
    encode,
)


class HostError(SfumatoError, ValueError):
    """A job the session will not send; the message says what to change, ``field`` names the
    job field it is about (``params.steps``), so a host can point at its widget."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- the offer


@dataclass(frozen=True)
class LoraChoice:
    """A LoRA a host may list for a model: ``usable`` ones can be ticked, ``note`` says why
    not (or what the LoRA is)."""

    name: str
    family: str
    usable: bool
    note: str = ""


# A job feature → the capability a server must announce first (docs/protocol.md section 3).
TASK_CAPABILITY = {task: task.value for task in Task}


@dataclass(frozen=True)
class Offer:
    """What one server offers, from its ``welcome`` (and later ``models`` answers)."""

    capabilities: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    models: tuple[ModelInfo, ...] = ()
    default_model: str = ""
    ready: bool = True
    status: str = ""
    server: str = ""
    notice: str = ""
    system: SystemInfo | None = None  # the server machine's facts (welcome.system)

    @classmethod
    def of(cls, welcome: Welcome) -> Offer:
        return cls(
            welcome.capabilities, welcome.limits, welcome.models, welcome.default_model,
            welcome.ready, welcome.status, welcome.server, welcome.notice, welcome.system,
        )  # fmt: skip

    def system_line(self) -> str:
        """One short line about the server's machine ("cuda:0 RTX 4090, 24 GiB · torch 2.5.1 ·
        3 of 5 models present"); "" from a server that does not say."""
        return self.system.line() if self.system is not None else ""

    def system_warnings(self) -> tuple[str, ...]:
        """What the user should know of the server's machine, each with its fix (running on
        the CPU, the default model's weights missing, a disk nearly full)."""
        return self.system.warnings if self.system is not None else ()

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def base_models(self) -> tuple[ModelInfo, ...]:
        return tuple(m for m in self.models if m.kind == "base")

    def model(self, name: str | None) -> ModelInfo | None:
        """The base model ``name`` (None or "": the server's default), if the server has it."""
        wanted = name or self.default_model
        return next((m for m in self.base_models() if m.name == wanted), None)

    def lora_choices(self, model: str | None) -> tuple[LoraChoice, ...]:
        """The LoRAs that fit ``model``'s family (one for SDXL cannot apply to SD 1.5), the
        unapproved ones and those whose weights are not on the server listed but not usable
        (the server refuses them). No such model known: none."""
        base = self.model(model)
        if base is None:
            return ()

        def note(m: ModelInfo) -> str:
            if not m.approved:
                return "not approved on this server"
            if not m.available:
                return (
                    f"its weights are not on the server: run `sfumato models pull {m.name}` there"
                )
            return m.description

        return tuple(
            LoraChoice(m.name, m.family, m.approved and m.available, note(m))
            for m in self.models
            if m.kind == "lora" and m.family == base.family
        )

    def usable_loras(self, model: str | None) -> tuple[str, ...]:
        return tuple(c.name for c in self.lora_choices(model) if c.usable)

    def check(self, job: Job) -> None:
        """Refuse, before anything is sent, what this server would refuse: a capability it
        did not announce, a value over its limits, a model or LoRA it lacks or does not
        approve, a message over its size limit, or any job while it is not ready."""
        self.check_params(job.params)
        for capability, name, what in (
            (TASK_CAPABILITY[job.task], "task", f"the {job.task.value} task"),
            *([("control", "inputs.controls", "controls")] if job.controls else []),
            *([("reference", "inputs.references", "reference images")] if job.references else []),
            *([("regions", "inputs.regions", "regions")] if job.regions else []),
        ):
            self._need(capability, name, what)
        try:
            job.check(self.limits)
        except ProtocolError as exc:
            raise HostError(exc.message, exc.field) from None
        size = sum(len(chunk) for chunk in encode(job))
        if size > self.limits.max_message_bytes:
            raise HostError(
                f"the job is {size / 2**20:.1f} MiB, over this server's max_message_bytes "
                f"({self.limits.max_message_bytes / 2**20:.0f} MiB); send smaller images",
                "inputs.image",
            )

    def check_params(self, p: JobParams) -> None:
        """The part of :meth:`check` that needs no inputs: a host calls it before it renders
        or reads pixels, so a refusal costs nothing."""
        if not self.ready:
            raise HostError(
                f"the server cannot run jobs now: {self.status or 'its engine does not load'}; "
                "once its admin has fixed it, Connect again"
            )
        needs = [("lora", "params.loras", "LoRAs")] if p.loras else []
        needs += [("tile", "params.tile", "tiling images")] if p.tile is not Tile.NONE else []
        needs += [("variants", "params.variants", "variants")] if p.variants > 1 else []
        needs += [("preview", "params.preview_every", "previews")] if p.preview_every else []
        for capability, name, what in needs:
            self._need(capability, name, what)
        self._check_limits(p)
        self._check_models(p)

    def _need(self, capability: str, name: str, what: str) -> None:
        if not self.has(capability):
            raise HostError(
                f"this server does not offer {what} (no {capability!r} capability); "
                "update the Sfumato server, or do without",
                name,
            )

    def _check_limits(self, p: JobParams) -> None:
        limits = self.limits
        for name, value, most in (
            ("steps", p.steps, limits.max_steps),
            ("variants", p.variants, limits.max_variants),
            ("preview_every", p.preview_every, limits.max_steps),
        ):
            if value > most:
                raise HostError(
                    f"{name} {value} is over this server's limit of {most}; use at most {most}",
                    f"params.{name}",
                )
        for name in ("prompt", "negative"):
            text = getattr(p, name)
            if len(text) > limits.max_prompt_chars:
                raise HostError(
                    f"the {name} has {len(text)} characters, over this server's limit of "
                    f"{limits.max_prompt_chars}; shorten it",
                    f"params.{name}",
                )

    def _check_models(self, p: JobParams) -> None:
        if not self.models:
            return  # a server that lists none: it decides
        base = self.model(p.model)
        if base is None:
            names = ", ".join(m.name for m in self.base_models()) or "(none)"
            raise HostError(
                f"model {p.model or self.default_model!r} is not on this server; pick one of: "
                f"{names}",
                "params.model",
            )
        if not base.approved:
            raise HostError(
                f"model {base.name!r} is not approved on this server; pick an approved one",
                "params.model",
            )
        choices = {c.name: c for c in self.lora_choices(base.name)}
        for n, lora in enumerate(p.loras):
            choice = choices.get(lora.name)
            if choice is None or not choice.usable:
                why = (
                    "is not approved on this server"
                    if choice
                    else (
                        f"does not fit the model {base.name!r} ({base.family}) or is not on this server"
                    )
                )
                raise HostError(f"the LoRA {lora.name!r} {why}: untick it", f"params.loras[{n}]")


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryRecord:
    """What a host remembers of a finished job: enough to find it and run it again. Plain
    values only (``to_dict`` is JSON), seeds as ints (a host whose integers are 32-bit signed
    stores them as text)."""

    job_id: str
    task: str
    prompt: str
    negative: str
    seeds: tuple[int, ...]
    model: str
    loras: tuple[tuple[str, float], ...]
    steps: int
    guidance: float
    strength: float
    tile: str
    tiny: bool
    size: tuple[int, int]
    finished: str  # UTC, ISO 8601

    @classmethod
    def of(cls, job: Job, result: Result, finished: float | None = None) -> HistoryRecord:
        p = job.params
        when = time.gmtime(time.time() if finished is None else finished)
        return cls(
            job_id=result.id, task=result.task.value, prompt=result.prompt or p.prompt,
            negative=p.negative, seeds=tuple(result.seeds), model=result.model,
            loras=tuple((lora.name, float(lora.weight)) for lora in p.loras), steps=p.steps,
            guidance=float(p.guidance), strength=float(p.strength), tile=p.tile.value,
            tiny=bool(result.tiny), size=job.output_size(),
            finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", when),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "task": self.task, "prompt": self.prompt,
            "negative": self.negative, "seeds": list(self.seeds), "model": self.model,
            "loras": [[n, w] for n, w in self.loras], "steps": self.steps,
            "guidance": self.guidance, "strength": self.strength, "tile": self.tile,
            "tiny": self.tiny, "size": list(self.size), "finished": self.finished,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryRecord:
        return cls(
            job_id=str(data["job_id"]), task=str(data["task"]), prompt=str(data["prompt"]),
            negative=str(data["negative"]), seeds=tuple(int(s) for s in data["seeds"]),
            model=str(data["model"]),
            loras=tuple((str(n), float(w)) for n, w in data["loras"]), steps=int(data["steps"]),
            guidance=float(data["guidance"]), strength=float(data["strength"]),
            tile=str(data["tile"]), tiny=bool(data["tiny"]),
            size=(int(data["size"][0]), int(data["size"][1])), finished=str(data["finished"]),
        )  # fmt: skip
