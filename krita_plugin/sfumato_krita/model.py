"""The docker's state, observable, with no widgets and no Qt: settings, the connection, the
models the server offers, and every job from submission to its end.

Widgets render this state and call its methods; they never catch the client's exceptions
(errors arrive as data: an ``Error`` event, or a :class:`~.jobs.PluginError` turned into a
message here). Callbacks instead of Qt signals, so the same object runs inside kritarunner
tests and could serve another host.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from sfumato.client import Connected, Disconnected, default_url
from sfumato.protocol import (
    Accepted,
    Array,
    Cancelled,
    ControlKind,
    Error,
    Job,
    LoraRef,
    ModelInfo,
    Models,
    Progress,
    Result,
    Welcome,
)

from .jobs import (
    USES_STRENGTH,
    CanvasInput,
    Mode,
    Placement,
    PluginError,
    Request,
    build_job,
    placement_for,
)

RETRY_S = 5  # seconds between reconnection attempts after a connection broke


class Link(str, Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class JobState(str, Enum):
    QUEUED = "queued"  # sent, not yet accepted
    WAITING = "waiting"  # accepted, in the server's queue
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass
class ControlLayer:
    """A layer that steers the job: which layer, read as which kind, how strongly, and
    whether it is a picture to detect from (``preprocess``) or already a control map."""

    layer_id: str  # the layer's unique id (a name can repeat)
    kind: ControlKind = ControlKind.CANNY
    strength: float = 1.0
    preprocess: bool = True


@dataclass
class Settings:
    url: str = field(default_factory=default_url)
    token: str = ""
    mode: Mode = Mode.GENERATE
    prompt: str = ""
    negative: str = ""
    strength: float = 0.75
    seed: int | None = None  # None: the server picks, and reports it
    variants: int = 1
    steps: int = 20
    guidance: float = 7.0
    model: str | None = None
    loras: dict[str, float] = field(default_factory=dict)  # name → weight, the ones in use
    controls: list[ControlLayer] = field(default_factory=list)
    context: int = 32  # pixels of context around a selection
    expand: int = 64
    scale: int = 2
    preview_every: int = 2

    def request(self) -> Request:
        strength = self.strength if self.mode in USES_STRENGTH else 1.0
        return Request(
            mode=self.mode, prompt=self.prompt, negative=self.negative, strength=strength,
            seed=self.seed, variants=self.variants, steps=self.steps, guidance=self.guidance,
            model=self.model, loras=tuple(LoraRef(n, w) for n, w in sorted(self.loras.items())),
            expand=self.expand, scale=self.scale, preview_every=self.preview_every,
        )  # fmt: skip


@dataclass(frozen=True)
class LoraChoice:
    """A LoRA the docker lists: ``usable`` ones can be ticked; ``note`` says why not, or
    what the LoRA is."""

    name: str
    usable: bool
    note: str = ""


def lora_choices(models: tuple[ModelInfo, ...], family: str | None) -> list[LoraChoice]:
    """The LoRAs that fit a model of ``family`` (a LoRA for another family — SDXL on SD1.5 —
    cannot be applied); unapproved ones are listed but not usable (the server refuses them).
    No family known (the server named no default model): none."""
    return [
        LoraChoice(
            m.name, m.approved, m.description if m.approved else "not approved on this server"
        )
        for m in models
        if m.kind == "lora" and family is not None and m.family == family
    ]


@dataclass
class JobRecord:
    """One job as the docker shows it; ``input`` is kept to place the result."""

    id: str
    request: Request
    input: CanvasInput
    state: JobState = JobState.QUEUED
    step: int = 0
    total: int = 0
    position: int = 0
    preview: Array | None = None
    message: str = ""
    layers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SendFailed:
    """A job could not be sent (the connection broke); made by the bridge's sender thread."""

    id: str
    message: str


Listener = Callable[["Session"], None]


class Session:
    """State of one docker. ``handle`` consumes client events and returns a Placement when
    a result should land in the document; the caller (``controller``) applies it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.link = Link.DISCONNECTED
        self.status = "not connected"
        self.welcome: Welcome | None = None
        self.models: tuple[ModelInfo, ...] = ()
        self.default_model = ""
        self.jobs: dict[str, JobRecord] = {}
        self.current: str | None = None  # the job the progress bar shows
        self.message = ""  # the last thing the user should read (errors, notices)
        self.retry = False  # a connection broke: reconnect until it is back
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ observing

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            listener(self)

    # ------------------------------------------------------------------ queries

    def base_models(self) -> list[str]:
        return [m.name for m in self.models if m.kind == "base"]

    def model_family(self) -> str | None:
        """The family of the chosen model, or of the server's default when none is chosen."""
        name = self.settings.model or self.default_model
        return next((m.family for m in self.models if m.kind == "base" and m.name == name), None)

    def lora_choices(self) -> list[LoraChoice]:
        return lora_choices(self.models, self.model_family())

    def loras(self) -> list[str]:
        """The LoRAs that can be used with the chosen model."""
        return [c.name for c in self.lora_choices() if c.usable]

    @property
    def capabilities(self) -> tuple[str, ...]:
        return self.welcome.capabilities if self.welcome else ()

    @property
    def busy(self) -> bool:
        return any(not j.state.finished for j in self.jobs.values())

    def job(self) -> JobRecord | None:
        return self.jobs.get(self.current) if self.current else None

    # ------------------------------------------------------------------ actions

    def connecting(self) -> None:
        self.link, self.status, self.message = (
            Link.CONNECTING,
            f"connecting to {self.settings.url}",
            "",
        )
        self.changed()

    def choose_model(self, name: str | None) -> None:
        """Use model ``name`` (None: the server's default); untick LoRAs that do not fit it."""
        self.settings.model = name or None
        self._keep_usable_loras()
        self.changed()

    def _keep_usable_loras(self) -> None:
        usable = set(self.loras())
        self.settings.loras = {n: w for n, w in self.settings.loras.items() if n in usable}

    def start_job(self, inp: CanvasInput) -> Job:
        """Build the job for the current settings; raises PluginError (also shown)."""
        if self.welcome is None or self.link is not Link.CONNECTED:
            raise self.refuse("not connected: press Connect (is `sfumato serve` running?)")
        if self.busy:
            raise self.fail("a job is still running: wait for it, or press Cancel first")
        request = self.settings.request()
        if request.model is None and self.default_model:
            request = replace(request, model=self.default_model)
        unfit = sorted(lo.name for lo in request.loras if lo.name not in self.loras())
        if unfit:
            raise self.refuse(
                f"the LoRA {', '.join(unfit)} does not fit the model {request.model or '?'} "
                f"({self.model_family() or 'unknown family'}) or is not approved: untick it"
            )
        job_id = f"krita-{uuid.uuid4().hex[:16]}"
        limits = self.welcome.limits
        try:
            job = build_job(request, inp, self.capabilities, job_id, limits.max_image_side)
        except PluginError as exc:
            raise self.refuse(str(exc)) from None
        self.jobs[job_id] = JobRecord(job_id, request, inp)
        self.current, self.message = job_id, ""
        self.changed()
        return job

    def fail(self, message: str) -> PluginError:
        """Show ``message`` and return the error for the caller to raise."""
        self.message = message
        self.changed()
        return PluginError(message)

    def refuse(self, message: str) -> PluginError:
        """A job that was not started: show why, and stop showing the last job's progress
        and preview under it (unless a job still runs: that one stays in view)."""
        if not self.busy:
            self.current = None
        return self.fail(message)

    def orphaned(self, job_id: str) -> None:
        """The result of ``job_id`` arrived after its image was closed: nothing was added."""
        record = self.jobs[job_id]
        record.state, record.layers = JobState.FAILED, []
        record.message = self.message = (
            f"nothing was added: the image of job {job_id} was closed before its result "
            "arrived; open the image again and run the job again"
        )
        self.changed()

    # ------------------------------------------------------------------ events

    def handle(self, event: object) -> Placement | None:
        """Apply one client event; returns where a finished result goes."""
        placement = None
        if isinstance(event, Connected):
            self._welcome(event.welcome)
        elif isinstance(event, Disconnected):
            self._disconnected(event.reason)
        elif isinstance(event, Models):
            self.models, self.default_model = event.models, event.default_model
            self._keep_usable_loras()
        elif isinstance(event, Error) and event.id is None:
            self.message = f"{event.code.value}: {event.message}"
        elif (record := self.jobs.get(getattr(event, "id", None) or "")) is not None:
            placement = self._job_event(record, event)
        else:
            return None  # another client's job, or one this docker forgot
        self.changed()
        return placement

    def _disconnected(self, reason: str) -> None:
        """A connection that was up and broke is retried (``retry``: the docker reconnects
        every RETRY_S seconds until the server is back); a failed first attempt is not."""
        self.retry = self.retry or self.link is Link.CONNECTED
        self.link, self.welcome = Link.DISCONNECTED, None
        if self.retry:
            self.status = (
                f"lost the connection to {self.settings.url} ({reason}); trying again every "
                f"{RETRY_S} s — is `sfumato serve` still running?"
            )
        else:
            self.status = f"disconnected: {reason}"
        for record in self.jobs.values():
            if not record.state.finished:
                record.state = JobState.FAILED
                record.message = "the connection was lost while this job ran: run it again"
                if record.id == self.current:
                    self.message = record.message

    def _welcome(self, welcome: Welcome) -> None:
        self.retry = False
        self.link, self.welcome = Link.CONNECTED, welcome
        self.models, self.default_model = welcome.models, welcome.default_model
        self.status = f"connected to {self.settings.url} (server {welcome.server})"
        if any(m.tiny and m.name == welcome.default_model for m in welcome.models):
            self.status += "; its default model is the tiny test model: images are noise"
        self.message = welcome.notice
        if self.settings.model not in (None, *self.base_models()):
            self.settings.model = None  # a model this server lacks: use its default
        self._keep_usable_loras()

    def _job_event(self, record: JobRecord, event: object) -> Placement | None:
        if isinstance(event, SendFailed):
            record.state, record.message = JobState.FAILED, event.message
            self.message = event.message
        elif isinstance(event, Accepted):
            record.state, record.position = JobState.WAITING, event.position
        elif isinstance(event, Progress):
            record.state, record.step, record.total = JobState.RUNNING, event.step, event.total
            if event.preview is not None:
                record.preview = event.preview
        elif isinstance(event, Result):
            try:
                placement = placement_for(record.request.mode, record.request, record.input, event)
            except PluginError as exc:
                record.state, record.message = JobState.FAILED, str(exc)
                self.message = str(exc)
                return None
            record.state, record.step = JobState.DONE, record.total
            if record.request.mode is Mode.BACKGROUND and record.input.covered:
                self.message = (
                    "the background was added below every layer, but the layers above cover "
                    "it completely: hide them, or erase where the background should show"
                )
            record.preview = event.images[0] if event.images else record.preview
            record.layers = [layer.name for layer in placement.layers]
            return placement
        elif isinstance(event, Error):
            record.state = JobState.FAILED
            record.message = self.message = f"{event.code.value}: {event.message}"
        elif isinstance(event, Cancelled):
            record.state, record.message = JobState.CANCELLED, "cancelled"
        return None
