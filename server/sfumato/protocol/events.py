"""Server → client messages of protocol v1 (docs/protocol.md, "Server messages")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._fields import BlobWriter, Reader
from .arrays import Array
from .errors import ErrorCode
from .limits import Limits
from .messages import SEED_MAX, Task, _job_id
from .multiview import Coverage
from .system import SystemInfo
from .training import Trained


@dataclass(frozen=True)
class ModelInfo:
    """What a client may know of a registry entry: never its path on the server."""

    name: str
    family: str  # sd15, sdxl, tiny-sd, …
    kind: str  # base, controlnet, lora, preview
    license: str = ""
    approved: bool = True
    tiny: bool = False  # random weights: images are noise
    description: str = ""
    control: str = ""  # controlnet entries: the control kind they read (depth, canny, …)
    sha256: str = ""  # of the approved weights, when the registry pins them
    available: bool = True  # its weights are on the server's disk (False: model_unavailable)
    turbo: str = ""  # a few-step model: adversarial (1–4 steps) or lcm (a LoRA, 2–8 steps)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "family": self.family, "kind": self.kind, "license": self.license,
            "approved": self.approved, "tiny": self.tiny, "description": self.description,
        }  # fmt: skip
        if self.control:
            out["control"] = self.control
        if self.sha256:
            out["sha256"] = self.sha256
        if not self.available:  # sent only when false: older frames keep their bytes
            out["available"] = False
        if self.turbo:
            out["turbo"] = self.turbo
        return out

    @classmethod
    def from_wire(cls, r: Reader) -> ModelInfo:
        info = cls(
            name=r.text("name"),
            family=r.text("family"),
            kind=r.text("kind"),
            license=r.text("license", ""),
            approved=r.boolean("approved", True),
            tiny=r.boolean("tiny", False),
            description=r.text("description", ""),
            control=r.text("control", ""),
            sha256=r.text("sha256", ""),
            available=r.boolean("available", True),
            turbo=r.text("turbo", "", max_len=50),
        )
        return info


def _read_models(r: Reader) -> tuple[ModelInfo, ...]:
    out = []
    for i, item in enumerate(r.items("models", [])):
        m = Reader(item, f"models[{i}]")
        out.append(ModelInfo.from_wire(m))
    return tuple(out)


@dataclass(frozen=True)
class ShmProbe:
    """A segment the server made and holds ``nonce``: a client that can open it and read the
    nonce shares the server's machine (and its /dev/shm), so it may send arrays by shm."""

    probe: str
    nonce: str

    def to_wire(self) -> dict[str, Any]:
        return {"probe": self.probe, "nonce": self.nonce}

    @classmethod
    def from_wire(cls, r: Reader) -> ShmProbe:
        return cls(r.text("probe", max_len=200), r.text("nonce", max_len=200))


@dataclass(frozen=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    server: str  # server version
    protocol: int
    capabilities: tuple[str, ...] = ()  # tasks and optional features this server offers
    models: tuple[ModelInfo, ...] = ()
    default_model: str = ""
    limits: Limits = field(default_factory=Limits)
    client_id: str = ""  # the identity results are filed under; reuse it to fetch after reconnect
    notice: str = ""  # something the user should read (e.g. "tiny model: images are noise")
    ready: bool = True  # False: jobs cannot run now (the engine does not load); see status
    status: str = ""  # when not ready: why, and what the server's admin should do
    system: SystemInfo | None = None  # the machine's facts in short (sfumato doctor's)
    input_cache: int = 0  # input_ref: bytes of inputs the server keeps for by-hash reuse
    shm: ShmProbe | None = None  # shm: how a client learns it shares the server's machine

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out = {
            "server": self.server, "protocol": self.protocol,
            "capabilities": list(self.capabilities), "models": [m.to_wire() for m in self.models],
            "default_model": self.default_model, "limits": self.limits.to_wire(),
            "client_id": self.client_id, "notice": self.notice,
        }  # fmt: skip
        if not self.ready:  # written only when false: a ready welcome is unchanged on the wire
            out |= {"ready": False, "status": self.status}
        if self.system is not None:  # written only when known: older frames keep their bytes
            out["system"] = self.system.to_wire()
        if self.input_cache:
            out["input_cache"] = self.input_cache
        if self.shm is not None:
            out["shm"] = self.shm.to_wire()
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Welcome:
        return cls(
            server=r.text("server"),
            protocol=r.integer("protocol", lo=0, hi=2**31),
            capabilities=tuple(str(c) for c in r.items("capabilities", [])),
            models=_read_models(r),
            default_model=r.text("default_model", ""),
            limits=Limits.from_wire(r.raw("limits", {})),
            client_id=r.text("client_id", ""),
            notice=r.text("notice", ""),
            ready=r.boolean("ready", True),
            status=r.text("status", ""),
            system=_read_system(r),
            input_cache=r.integer("input_cache", 0, lo=0, hi=2**63 - 1),
            shm=None if (probe := r.submap("shm", None)) is None else ShmProbe.from_wire(probe),
        )


def _read_system(r: Reader) -> SystemInfo | None:
    system = r.submap("system", None)
    return None if system is None else SystemInfo.from_wire(system)


@dataclass(frozen=True)
class Models:
    TYPE: ClassVar[str] = "models"
    models: tuple[ModelInfo, ...]
    default_model: str = ""

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        return {"models": [m.to_wire() for m in self.models], "default_model": self.default_model}

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Models:
        return cls(_read_models(r), r.text("default_model", ""))


@dataclass(frozen=True)
class Accepted:
    TYPE: ClassVar[str] = "accepted"
    id: str
    position: int  # jobs ahead of this one in the server's queue (0: next to run)

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        return {"id": self.id, "position": self.position}

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Accepted:
        return cls(_job_id(r), r.integer("position", lo=0, hi=2**31))


@dataclass(frozen=True)
class Progress:
    TYPE: ClassVar[str] = "progress"
    id: str
    step: int
    total: int
    stage: str = "denoise"  # loading (model weights), denoise, suspended (kept over a restart)
    preview: Array | None = None  # small uint8 RGB image of the current latents
    loss: float | None = None  # stage train: the training loss of this step

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "step": self.step,
            "total": self.total,
            "stage": self.stage,
        }
        if self.preview is not None:
            out["preview"] = w.ref(self.preview)
        if self.loss is not None:
            out["loss"] = self.loss
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Progress:
        return cls(
            _job_id(r),
            r.integer("step", lo=0, hi=2**31),
            r.integer("total", lo=0, hi=2**31),
            r.text("stage", "denoise"),
            r.array("preview", None),
            r.number("loss", None, lo=0.0, hi=float("inf")),
        )


@dataclass(frozen=True)
class Result:
    """A finished job: one uint8 RGB image per variant, and the facts needed to reproduce it."""

    TYPE: ClassVar[str] = "result"
    id: str
    task: Task
    images: tuple[Array, ...]
    seeds: tuple[int, ...]
    model: str
    tiny: bool = False
    prompt: str = ""
    timings: dict[str, float] = field(default_factory=dict)  # seconds: queued, load, run, total
    # The stored PNG files, content credentials included, when the job asked (params.files).
    files: tuple[bytes | memoryview, ...] = ()
    coverage: Coverage | None = None  # task multiview: how much of the texture was covered
    trained: Trained | None = None  # task train: the registry entry it added (unapproved)

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "task": self.task.value, "images": [w.ref(a) for a in self.images],
            "seeds": list(self.seeds), "model": self.model, "tiny": self.tiny,
            "prompt": self.prompt, "timings": dict(self.timings),
        }  # fmt: skip
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_wire()
        if self.files:
            out["files"] = [w.bytes_ref(f) for f in self.files]
        if self.trained is not None:
            out["trained"] = self.trained.to_wire()
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Result:
        timings = r.submap("timings", None)
        coverage = r.submap("coverage", None)
        trained = r.submap("trained", None)
        return cls(
            id=_job_id(r),
            task=r.choice("task", Task),
            images=r.arrays("images"),
            seeds=r.integers("seeds", lo=0, hi=SEED_MAX),
            model=r.text("model"),
            tiny=r.boolean("tiny", False),
            prompt=r.text("prompt", ""),
            timings={} if timings is None else _timings(timings),
            files=r.byte_strings("files"),
            coverage=None if coverage is None else Coverage.from_wire(coverage),
            trained=None if trained is None else Trained.from_wire(trained),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        same_files = [bytes(f) for f in self.files] == [bytes(f) for f in other.files]
        fields_ = ("id", "task", "images", "seeds", "model", "tiny", "prompt", "timings",
                   "coverage", "trained")  # fmt: skip
        return same_files and all(getattr(self, f) == getattr(other, f) for f in fields_)

    __hash__ = None  # type: ignore[assignment]


def _timings(r: Reader) -> dict[str, float]:
    timings = {k: r.number(k, None, lo=0.0, hi=1e9) for k in r.names()}
    return {k: v for k, v in timings.items() if v is not None}  # nil is absent (§2)


@dataclass(frozen=True)
class Error:
    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    id: str | None = None  # the job it concerns, if any
    field: str | None = None  # dotted path of the offending field, if any

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.id is not None:
            out["id"] = self.id
        if self.field is not None:
            out["field"] = self.field
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Error:
        return cls(
            code=_error_code(r.text("code", ErrorCode.INTERNAL.value)),
            message=r.text("message", ""),
            id=r.text("id", None),
            field=r.text("field", None),
        )


@dataclass(frozen=True)
class Cancelled:
    TYPE: ClassVar[str] = "cancelled"
    id: str
    reason: str = ""  # "": the client cancelled (or a stop); SUPERSEDED: a newer live job

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.reason:  # written only when set: a plain cancel keeps its bytes
            out["reason"] = self.reason
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Cancelled:
        return cls(_job_id(r), r.text("reason", "", max_len=200))


SUPERSEDED = "superseded"  # cancelled.reason: a newer live job of the same live_key came


def _error_code(value: str) -> ErrorCode:
    """Codes may be added in later servers; an unknown one reads as INTERNAL, keeping the text."""
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL
