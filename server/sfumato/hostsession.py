"""The client session both host plugins run, with no I/O and no host in it: what the server
offers (capabilities, limits, models, LoRAs), every job from submission to its one end, and
what a reconnect must ask for again.

Sans-I/O, like ``sfumato.protocol``: :meth:`HostSession.handle` takes the client's events
(``Connected``, ``Disconnected`` and server messages) and returns typed :class:`Update`\\ s;
the messages it wants sent (the fetches of a reconnect) wait in :meth:`HostSession.to_send`.
``hostlink.HostLink`` moves them over a :class:`~sfumato.client.Client`; a host (Blender's
bridge, Krita's docker) only turns updates into its own pixels and widgets. No Qt, no bpy,
no threads, no asyncio here, so Blender and Krita behave the same because they run the same
code — and it is tested without either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Generic, TypeVar

from .client import Connected, Disconnected
from .hostoffer import (  # noqa: F401 (re-exported: hosts import the session API from here)
    TASK_CAPABILITY,
    HistoryRecord,
    HostError,
    LoraChoice,
    Offer,
)
from .protocol import (
    Accepted,
    Array,
    Cancelled,
    Error,
    ErrorCode,
    Fetch,
    Job,
    Models,
    Progress,
    Result,
    Welcome,
)

P = TypeVar("P")  # what a host keeps with a job to place its result (Blender: a target)
LOST = "lost to a server restart — run it again"


class Link(str, Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class JobState(str, Enum):
    SENT = "sent"  # submitted, no answer yet
    QUEUED = "queued"  # accepted, waiting in the server's queue (``position`` ahead)
    RUNNING = "running"  # loading the model or denoising
    SUSPENDED = "suspended"  # the server is stopping; it keeps the job and runs it after
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # lost to a server restart (``interrupted``, or unknown after a reconnect)

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.LOST})


@dataclass
class JobRecord(Generic[P]):
    """One job as a host shows it. ``purpose`` is the host's typed record of what the result
    is for; ``label`` names the job to the user ("inpaint")."""

    job: Job
    purpose: P
    label: str = ""
    state: JobState = JobState.SENT
    position: int = 0
    step: int = 0
    total: int = 0
    stage: str = ""
    preview: Array | None = None
    message: str = ""  # what the user should read about this job now
    result: Result | None = None
    error: Error | None = None
    fetched: bool = False  # asked for again after the last reconnect
    refetches: int = 0  # how many reconnects asked for it

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def progress(self) -> float:
        """0 … 1 of the denoising steps; 1 when done."""
        if self.state is JobState.DONE:
            return 1.0
        return self.step / self.total if self.total else 0.0

    def status(self) -> str:
        """A short status line: what the job is doing, or how it ended."""
        if self.state is JobState.QUEUED:
            return f"queued ({self.position} ahead)" if self.position else "starting"
        if self.state is JobState.RUNNING:
            return (
                "loading the model"
                if self.stage == "loading"
                else (f"step {self.step} of {self.total}")
            )
        if self.state is JobState.SUSPENDED:
            return "kept by the restarting server"
        if self.state is JobState.SENT:
            return "reconnected; fetching the result" if self.fetched else "sent"
        return self.state.value


# --------------------------------------------------------------------------- updates


@dataclass(frozen=True)
class Linked:
    """Connected: ``welcome`` holds what the server offers (also in the session's ``offer``)."""

    welcome: Welcome


@dataclass(frozen=True)
class Unlinked:
    """The connection is gone (``connecting``: it never came up, and ``reason`` says why and
    what to do); ``waiting`` are the jobs a reconnect will fetch."""

    reason: str
    waiting: tuple[str, ...] = ()
    connecting: bool = False


@dataclass(frozen=True)
class ModelsChanged:
    pass


@dataclass(frozen=True)
class JobChanged(Generic[P]):
    """Accepted, progress, a preview, suspended: the record says what."""

    record: JobRecord[P]


@dataclass(frozen=True)
class JobEnded(Generic[P]):
    """The job's one end: ``record.state`` is DONE (``record.result`` to place), FAILED,
    CANCELLED or LOST, with ``record.message`` for the user."""

    record: JobRecord[P]


@dataclass(frozen=True)
class Notice:
    """Something for the user that concerns no tracked job (an error without a job id)."""

    message: str


Update = Linked | Unlinked | ModelsChanged | JobChanged[Any] | JobEnded[Any] | Notice


# --------------------------------------------------------------------------- the session


class HostSession(Generic[P]):
    """One host's session with one server at a time: the offer, the jobs, the reconnects.

    Every job ends exactly once (one :class:`JobEnded`), however many copies of its end
    arrive (a live result and the stored one a reconnect fetched)."""

    def __init__(self) -> None:
        self.link = Link.DISCONNECTED
        self.offer = Offer()
        self.welcome: Welcome | None = None
        self.client_id: str | None = None  # kept across connections: fetch after reconnect
        self.jobs: dict[str, JobRecord[P]] = {}  # unfinished jobs, by id
        self._outbox: list[Fetch] = []

    # ------------------------------------------------------------------ queries

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def record(self, job_id: str | None) -> JobRecord[P] | None:
        return self.jobs.get(job_id or "")

    # ------------------------------------------------------------------ host actions

    def connecting(self) -> None:
        self.link = Link.CONNECTING

    def track(self, job: Job, purpose: P, label: str = "") -> JobRecord[P]:
        """Check ``job`` against the offer and record it as sent; raises HostError (and
        records nothing) for what the server would refuse. Call before sending it."""
        if self.link is not Link.CONNECTED or self.welcome is None:
            raise HostError("not connected: press Connect (is `sfumato serve` running?)")
        if job.id in self.jobs:
            raise HostError(f"job {job.id} is running already; use a new id")
        self.offer.check(job)
        record = JobRecord(job, purpose, label)
        self.jobs[job.id] = record
        return record

    def fail(self, job_id: str, message: str) -> JobEnded[P] | None:
        """End a job the host could not send or whose result it could not place."""
        record = self.jobs.pop(job_id, None)
        if record is None:
            return None
        record.state, record.message = JobState.FAILED, message
        return JobEnded(record)

    def forget(self, job_id: str) -> None:
        """Stop tracking a job without an end (its record is gone with the host's file)."""
        self.jobs.pop(job_id, None)

    def to_send(self) -> list[Fetch]:
        """The messages the session wants sent now (a reconnect's fetches), once each."""
        out, self._outbox = self._outbox, []
        return out

    # ------------------------------------------------------------------ events

    def handle_all(self, events: Iterable[object]) -> list[Update]:
        out: list[Update] = []
        for event in events:
            out.extend(self.handle(event))
        return out

    def handle(self, event: object) -> list[Update]:
        """Apply one client event; returns what changed, for the host to show."""
        if isinstance(event, Connected):
            return self._welcome(event.welcome)
        if isinstance(event, Disconnected):
            return self._disconnected(event.reason)
        if isinstance(event, Models):
            self.offer = replace(self.offer, models=event.models, default_model=event.default_model)
            return [ModelsChanged()]
        record = self.record(getattr(event, "id", None))
        if record is None:
            if isinstance(event, Error):  # about no job we track (or one that ended)
                return [Notice(f"{event.message} [{event.code.value}]")]
            return []  # another host's job of this identity, or a late copy of an end
        return self._job_event(record, event)

    def _welcome(self, welcome: Welcome) -> list[Update]:
        if welcome is self.welcome and self.link is Link.CONNECTED:
            return []  # handled already (a blocking connect, then its queued event)
        self.link, self.welcome, self.client_id = Link.CONNECTED, welcome, welcome.client_id
        self.offer = Offer.of(welcome)
        for record in self.jobs.values():  # results filed under our client_id meanwhile
            record.fetched, record.refetches = True, record.refetches + 1
            record.state, record.message = JobState.SENT, ""
            self._outbox.append(Fetch(record.id))
        return [Linked(welcome), ModelsChanged()]

    def _disconnected(self, reason: str) -> list[Update]:
        connecting = self.link is Link.CONNECTING
        self.link, self.welcome = Link.DISCONNECTED, None
        self._outbox.clear()
        for record in self.jobs.values():
            if record.state is not JobState.SUSPENDED:
                record.message = f"lost the server ({reason}); Connect to fetch the result"
        return [Unlinked(reason, tuple(self.jobs), connecting)]

    def _job_event(self, record: JobRecord[P], event: object) -> list[Update]:
        if isinstance(event, Accepted):
            record.state, record.position = JobState.QUEUED, event.position
        elif isinstance(event, Progress):
            if event.stage == "suspended":
                record.state = JobState.SUSPENDED
                record.message = (
                    f"the server is restarting; it keeps job {record.id} and runs it after "
                    "the restart — Connect again then to get the result"
                )
            else:
                record.state, record.stage = JobState.RUNNING, event.stage
                if event.stage != "loading":
                    record.step, record.total = event.step, event.total
                record.message = ""
                if event.preview is not None:
                    record.preview = event.preview
        elif isinstance(event, Result):
            record.state, record.result, record.step = JobState.DONE, event, record.total
            return self._end(record)
        elif isinstance(event, Error):
            record.error = event
            if self._lost_to_restart(record, event):
                what = f"the {record.label} job" if record.label else "job"
                record.state, record.message = JobState.LOST, f"{what} {record.id} was {LOST}"
            else:
                record.state = JobState.FAILED
                record.message = f"{event.message} [{event.code.value}]"
            return self._end(record)
        elif isinstance(event, Cancelled):
            record.state, record.message = JobState.CANCELLED, "cancelled"
            return self._end(record)
        else:
            return []
        return [JobChanged(record)]

    def _end(self, record: JobRecord[P]) -> list[Update]:
        self.jobs.pop(record.id, None)
        return [JobEnded(record)]

    @staticmethod
    def _lost_to_restart(record: JobRecord[Any], error: Error) -> bool:
        """A job the server no longer has because it restarted: it says so (``interrupted``),
        or, for servers before that code (or one that lost its results folder), answers our
        reconnect's fetch with ``not_found``."""
        return error.code is ErrorCode.INTERRUPTED or (
            error.code is ErrorCode.NOT_FOUND and record.fetched
        )
