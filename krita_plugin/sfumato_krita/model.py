"""The plugin's state, observable, with no widgets and no Qt: settings, the connection, the
models the server offers, and every job from submission to its end.

The session itself — what the server offers, its limits, the model and LoRA choice, every
job's one end, the fetches a reconnect sends — is ``sfumato.hostsession.HostSession``, the
one Blender runs too (issue 10, item 1). This module adapts it to Krita: the docker's
settings, its status and message lines, the retrying of a broken connection, and the
``Target`` each job keeps to place its result (what was read from the document).

Widgets render this state and call its methods; they never catch the client's exceptions
(errors arrive as data: an ``Error`` event, or a :class:`~.jobs.PluginError` turned into a
message here). Callbacks instead of Qt signals, so the same object runs inside kritarunner
tests and could serve another host.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sfumato.client import default_url
from sfumato.hostsession import (
    HostError,
    HostSession,
    JobEnded,
    JobRecord,
    JobState,
    Link,
    Linked,
    LoraChoice,
    ModelsChanged,
    Notice,
    Offer,
    Unlinked,
)
from sfumato.protocol import ControlKind, Job, LoraRef, ModelInfo, Result, Welcome

from .direction import ReferenceLayer
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
    server_env: str = ""  # "Start a local server": its environment ("": found automatically)
    server_args: str = ""  # … and extra `sfumato serve` arguments
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
    references: list[ReferenceLayer] = field(default_factory=list)  # layers or files (16.3)
    regions: bool = True  # send the region layers (their prompts live in the document)
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


@dataclass
class Target:
    """What a Krita job keeps to place its result (the host session's ``purpose``): the
    settings it ran with, what was read from the document, and the layers it became."""

    request: Request
    input: CanvasInput
    layers: list[str] = field(default_factory=list)


Record = JobRecord[Target]
MISSING = "its weights are not on the server: its admin must download them (a job would fail)"


@dataclass(frozen=True)
class ModelChoice:
    """A base model the docker lists: ``label`` is what it shows, ``note`` its tooltip."""

    name: str
    label: str
    usable: bool
    note: str = ""


def _usable(m: ModelInfo, missing_label: str) -> tuple[str, bool, str]:
    if not m.available:
        return missing_label, False, MISSING
    if not m.approved:
        return f"{m.name} — not approved", False, "not approved on this server"
    return m.name, True, m.description


__all__ = [
    "JobState", "Link", "LoraChoice", "ModelChoice", "Record", "Session", "Settings", "Target",
]  # fmt: skip


@dataclass(frozen=True)
class SendFailed:
    """A job could not be sent (the connection broke); made by the bridge's sender thread."""

    id: str
    message: str


@dataclass(frozen=True)
class Ended:
    """A job's one end, for the controller: ``placement`` says where a result goes (None:
    nothing to place — failed, cancelled, lost, or a result that cannot be placed)."""

    record: Record
    placement: Placement | None


# What a refusal's field is called in the docker, so the message points at the widget.
WIDGETS = {
    "task": "Mode", "inputs.controls": "the control layers", "params.loras": "the LoRAs",
    "params.steps": "Steps", "params.variants": "Variants", "params.model": "Model",
    "params.prompt": "Prompt", "params.negative": "Negative", "inputs.image": "the image",
    "params.preview_every": "previews",
}  # fmt: skip

Listener = Callable[["Session"], None]


class Session:
    """The state the plugin shows. One per Krita instance: the extension owns it and every
    window's docker renders it (issue 10, item 2). ``handle`` consumes client events and
    returns the jobs that ended (with where a result goes); the ``controller`` places them
    and sends what the host session asks for (a reconnect's fetches)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.host: HostSession[Target] = HostSession()
        self.status = "not connected"
        # the jobs in view: unfinished ones and the last one to end (an ended job's input and
        # result images are let go when the next starts: a long session does not pile them up)
        self.jobs: dict[str, Record] = {}
        self.started = 0  # jobs started in this session
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

    @property
    def link(self) -> Link:
        return self.host.link

    @property
    def welcome(self) -> Welcome | None:
        return self.host.welcome

    @property
    def offer(self) -> Offer:
        return self.host.offer

    @property
    def machine(self) -> str:
        """The server machine's line and its warnings, one a line (welcome.system): what
        ``sfumato doctor`` says there, in short; "" when not connected or not said."""
        if self.link is not Link.CONNECTED:
            return ""
        return "\n".join(filter(None, (self.offer.system_line(), *self.offer.system_warnings())))

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return self.offer.models

    @property
    def default_model(self) -> str:
        return self.offer.default_model

    @property
    def capabilities(self) -> tuple[str, ...]:
        return self.offer.capabilities if self.welcome else ()

    def base_models(self) -> list[str]:
        return [m.name for m in self.offer.base_models()]

    def model_family(self) -> str | None:
        """The family of the chosen model, or of the server's default when none is chosen."""
        base = self.offer.model(self.settings.model)
        return base.family if base else None

    def model_choices(self) -> list[ModelChoice]:
        """The base models the Model list shows, each marked when the server has not
        approved it or lacks its weights (``ModelInfo.available``, issue 18 item 6)."""
        return [
            ModelChoice(m.name, *_usable(m, f"{m.name} — weights missing"))
            for m in self.offer.base_models()
        ]

    def lora_choices(self) -> list[LoraChoice]:
        """The LoRAs of the chosen model's family; unapproved ones, and ones whose weights
        the server lacks, listed but not usable."""
        available = {m.name: m.available for m in self.models}
        return [
            c if available.get(c.name, True) else replace(c, usable=False, note=MISSING)
            for c in self.offer.lora_choices(self.settings.model)
        ]

    def loras(self) -> list[str]:
        """The LoRAs that can be used with the chosen model."""
        return [c.name for c in self.lora_choices() if c.usable]

    @property
    def busy(self) -> bool:
        return self.host.busy

    def job(self) -> Record | None:
        return self.jobs.get(self.current) if self.current else None

    # ------------------------------------------------------------------ actions

    def connecting(self) -> None:
        self.host.connecting()
        self.status = f"connecting to {self.settings.url}"
        if not self.busy:  # a job waiting for the reconnect keeps its message in view
            self.message = ""
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
        """Build the job for the current settings and track it; raises PluginError (also
        shown) for what would be refused — by this plugin or, through the host session's
        offer check, by the server."""
        if self.welcome is None or self.link is not Link.CONNECTED:
            raise self.refuse("not connected: press Connect (is `sfumato serve` running?)")
        if self.busy:
            raise self.fail("a job is still running: wait for it, or press Cancel first")
        request = self.settings.request()
        if request.model is None and self.default_model:
            request = replace(request, model=self.default_model)
        chosen = self.offer.model(request.model)
        if chosen is not None and not chosen.available:
            raise self.refuse(
                f"the model {chosen.name!r} cannot run: {MISSING}; pick another Model"
            )
        job_id = f"krita-{uuid.uuid4().hex[:16]}"
        limits = self.offer.limits
        try:
            job = build_job(request, inp, self.capabilities, job_id, limits.max_image_side)
            record = self.host.track(job, Target(request, inp), request.mode.value)
        except PluginError as exc:
            raise self.refuse(str(exc)) from None
        except HostError as exc:
            raise self.refuse(_pointed(exc)) from None
        self.jobs = {i: r for i, r in self.jobs.items() if not r.state.finished}
        self.jobs[job_id] = record
        self.started += 1
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
        record.state, record.purpose.layers = JobState.FAILED, []
        record.message = self.message = (
            f"nothing was added: the image of job {job_id} was closed before its result "
            "arrived; open the image again and run the job again"
        )
        self.changed()

    # ------------------------------------------------------------------ events

    def handle(self, event: object) -> list[Ended]:
        """Apply one client event (or a bridge's ``SendFailed``); returns the jobs it ended."""
        was_linked = self.link is Link.CONNECTED
        if isinstance(event, SendFailed):
            end = self.host.fail(event.id, event.message)
            updates: list[object] = [end] if end is not None else []
        else:
            updates = list(self.host.handle(event))
        if not updates:
            return []
        ended = [e for u in updates if (e := self._update(u, was_linked)) is not None]
        self.changed()
        return ended

    def _update(self, update: object, was_linked: bool) -> Ended | None:
        if isinstance(update, Linked):
            self._welcome(update.welcome)
        elif isinstance(update, Unlinked):
            self._disconnected(update.reason, update.waiting, was_linked)
        elif isinstance(update, ModelsChanged):
            self._keep_usable_loras()
        elif isinstance(update, Notice):
            self.message = update.message
        elif isinstance(update, JobEnded):
            return self._ended(update.record)
        return None

    def _ended(self, record: Record) -> Ended:
        self.jobs.setdefault(record.id, record)
        placement = None
        if record.state is JobState.DONE and record.result is not None:
            placement = self._place(record, record.result)
        elif record.id == self.current and record.state is not JobState.CANCELLED:
            self.message = record.message
        return Ended(record, placement)

    def _place(self, record: Record, result: Result) -> Placement | None:
        target = record.purpose
        try:
            placement = placement_for(record.job, target.request, target.input, result)
        except PluginError as exc:
            record.state, record.message = JobState.FAILED, str(exc)
            self.message = str(exc)
            return None
        if target.request.mode is Mode.BACKGROUND and target.input.covered:
            self.message = (
                "the background was added below every layer, but the layers above cover "
                "it completely: hide them, or erase where the background should show"
            )
        record.preview = result.images[0] if result.images else record.preview
        target.layers = [layer.name for layer in placement.layers]
        return placement

    def _disconnected(self, reason: str, waiting: tuple[str, ...], was_linked: bool) -> None:
        """A connection that was up and broke is retried (``retry``: the docker reconnects
        every RETRY_S seconds until the server is back); a failed first attempt is not. The
        jobs it ran stay tracked: the next welcome fetches them (the host session)."""
        self.retry = self.retry or was_linked
        if self.retry:
            self.status = (
                f"lost the connection to {self.settings.url} ({reason}); trying again every "
                f"{RETRY_S} s — is `sfumato serve` still running?"
            )
        else:
            self.status = f"disconnected: {reason}"
        if self.current in waiting:
            self.message = (
                f"the connection was lost while job {self.current} ran; once the server is "
                "back the plugin fetches its result (or says to run it again)"
            )

    def _welcome(self, welcome: Welcome) -> None:
        self.retry = False
        self.status = f"connected to {self.settings.url} (server {welcome.server})"
        if any(m.tiny and m.name == welcome.default_model for m in welcome.models):
            self.status += "; its default model is the tiny test model: images are noise"
        self.message = welcome.notice
        if self.current in self.host.jobs:  # it ran when the connection broke
            self.message = f"reconnected; fetching the result of job {self.current}"
        if self.settings.model not in (None, *self.base_models()):
            self.settings.model = None  # a model this server lacks: use its default
        self._keep_usable_loras()


def _pointed(exc: HostError) -> str:
    """The host session's refusal, naming the docker's widget for its field."""
    widget = WIDGETS.get(exc.field or "") or WIDGETS.get((exc.field or "").split("[")[0])
    return f"{exc} ({widget})" if widget else str(exc)
