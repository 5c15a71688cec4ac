"""Krita Live's state and decisions, with no Krita and no Qt (issue 12, item 3): what counts
as a change, the live job for the current settings, which end of which job lands in the one
live layer, and what Apply and Live off do.

The timing rules (debounce, one job at a time, newest result wins, off cancels) are
``sfumato.hostlive.LiveLoop``, the loop Blender's live viewport runs too; this module feeds
it Krita's observations and turns its answers into plans for ``live`` (the Qt side), which
alone touches the document. A change is seen by comparing :class:`Look`\\ s: tiny thumbnails
of the artist's layers (never the live layer itself: its own update is not a change) plus
the selection and the settings a live job uses — cheap to take every poll; the region's
pixels are read only when a job is due.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any

from sfumato.hostlive import LiveLoop, Send, live_job
from sfumato.hostsession import HostError
from sfumato.protocol import Cancelled, Error, Job, Result

from .jobs import SEED_MAX as _SEED_MAX
from .jobs import CanvasInput, LayerPlan, Mode, PluginError, Request, build_job, placement_for
from .model import Session, Settings

LAYER = "Sfumato live"  # the one live preview layer, on top of the document


@dataclass(frozen=True)
class NodeLook:
    """One of the artist's layers as a poll sees it: a thumbnail's bytes and its state."""

    node_id: str
    visible: bool
    opacity: int
    blending: str
    thumbnail: bytes  # a few KB: 32×32 BGRA of the layer's own pixels ("" for groups)


@dataclass(frozen=True)
class Look:
    """Everything a live job depends on, cheaply: equal looks need no new job."""

    size: tuple[int, int]
    selection: tuple[int, int, int, int] | None
    nodes: tuple[NodeLook, ...]  # the live layer left out
    settings: Hashable


def settings_key(s: Settings) -> Hashable:
    """The settings a live job uses; changing one of them re-runs it (Mode does not:
    Live always refines)."""
    controls = tuple((c.layer_id, c.kind.value, c.strength, c.preprocess) for c in s.controls)
    loras = tuple(sorted(s.loras.items()))
    return (s.prompt, s.negative, s.strength, s.seed, s.steps, s.guidance, s.model, s.context,
            loras, controls)  # fmt: skip


def live_request(s: Settings, seed: int) -> Request:
    """A refine of the region at the current strength, one image, no previews; ``seed`` is
    the docker's seed, or one drawn when Live was turned on (the same one for every edit,
    so the picture changes with the painting, not with a new noise)."""
    base = replace(s, mode=Mode.REFINE, variants=1, preview_every=0)
    return replace(base.request(), seed=s.seed if s.seed is not None else seed)


@dataclass
class Shown:
    """The live job whose result the live layer shows: what Apply copies and records."""

    job: Job
    request: Request
    input: CanvasInput
    result: Result
    plan: LayerPlan


@dataclass
class Flight:
    job: Job
    request: Request
    input: CanvasInput
    changed_at: float  # the last change it shows was seen then


class LiveState:
    """Live for one Krita instance: on for one document at a time. The Qt side calls
    :meth:`observe` with each poll's :class:`Look`, :meth:`due` to learn whether to read the
    canvas and send, :meth:`job_for` to build that job, and :meth:`handle` with every client
    event before the session sees it (live jobs never reach the docker's job list)."""

    def __init__(self, session: Session, loop: LiveLoop | None = None) -> None:
        self.session = session
        self.loop = loop or LiveLoop()
        self.key = f"krita-{uuid.uuid4().hex[:12]}"  # this Krita's live key (live_key)
        self.doc: Any = None  # the document Live works on
        self.seed = 0
        self.flights: dict[str, Flight] = {}
        self.shown: Shown | None = None  # what the live layer shows now
        self.message = ""  # the last live problem, with what to do
        self.latency: float | None = None  # the last edit → result shown (s)
        self.applied = 0
        self._changed_at = 0.0  # when the last change was seen
        self._last_sent: str | None = None

    @property
    def on(self) -> bool:
        return self.loop.on

    def status(self) -> str:
        """One line for the docker."""
        if not self.on:
            return self.message or "Live is off"
        if self.message:
            return self.message
        if self.loop.current is not None or self.loop.dirty:
            return "Live: refining…"
        if self.shown is not None and self.latency is not None:
            return f"Live: shown {self.latency * 1000:.0f} ms after the last change"
        return "Live: waiting for a change"

    # ------------------------------------------------------------------ on / off

    def start(self, doc: Any, now: float) -> str | None:
        """Turn Live on for ``doc``; the refusal (shown in the docker) or None."""
        if doc is None:
            return self._refuse("open an image first, then turn Live on")
        if self.session.link.value != "connected" or self.session.welcome is None:
            return self._refuse("not connected: press Connect, then turn Live on")
        if not self.session.offer.has("refine"):
            return self._refuse(
                "this server does not refine images (no 'refine' capability); update the "
                "Sfumato server to use Live"
            )
        self.doc, self.message, self.shown = doc, "", None
        self.seed = random.randrange(_SEED_MAX + 1)
        self.loop.start(now, supersedes=self.session.offer.has("live"))
        self._changed_at = now
        return None

    def stop(self, reason: str = "") -> tuple[str, ...]:
        """Live off: the jobs to cancel (the Qt side cancels them and removes the layer)."""
        running = self.loop.stop()
        self.doc, self.shown, self.message = None, None, reason
        return running

    def _refuse(self, message: str) -> str:
        self.message = message
        return message

    # ------------------------------------------------------------------ polling

    def observe(self, look: Look, last: Look | None, now: float) -> bool:
        """Tell the loop when ``look`` differs from the ``last`` one; True when it did."""
        if not self.on or look == last:
            return False
        self.loop.changed(now)
        self._changed_at = now
        return True

    def due(self, now: float) -> Send | None:
        return self.loop.due(now)

    def job_for(self, inp: CanvasInput) -> Job | None:
        """The live job for ``inp`` and the current settings, checked against the server's
        offer; None (and :attr:`message` says why) when it would be refused."""
        s = self.session.settings
        request = live_request(s, self.seed)
        if request.model is None and self.session.default_model:
            request = replace(request, model=self.session.default_model)
        offer = self.session.offer
        job_id = f"krita-live-{uuid.uuid4().hex[:16]}"
        try:
            job = build_job(request, inp, offer.capabilities, job_id, offer.limits.max_image_side)
            job = live_job(job, self.key, offer)
            offer.check(job)
        except (PluginError, HostError) as exc:
            self.message = f"Live: {exc}"
            self.loop.skipped()
            return None
        self.message = ""
        self.flights[job.id] = Flight(job, request, inp, self._changed_at)
        self._last_sent = job.id
        self.loop.sent(job.id)
        return job

    # ------------------------------------------------------------------ events

    def handle(self, events: list[object], now: float) -> tuple[list[object], Shown | None]:
        """Take the live jobs' events out of ``events``: the rest (for the session) and the
        result to show now, if any (the newest that arrived in this batch)."""
        rest: list[object] = []
        show: Shown | None = None
        for event in events:
            job_id = getattr(event, "id", None)
            if not isinstance(job_id, str) or not self.loop.ours(job_id):
                rest.append(event)
                continue
            flight = self.flights.pop(job_id, None)
            if isinstance(event, Result | Error | Cancelled):
                self.loop.ended(job_id)
            else:
                if flight is not None:
                    self.flights[job_id] = flight  # accepted, progress: still running
                continue
            if flight is None:
                continue
            if isinstance(event, Result) and self.loop.show(job_id):
                shown = self._shown(flight, event)
                if shown is not None:
                    show, self.latency = shown, now - flight.changed_at
            elif isinstance(event, Error) and self.on and job_id == self._last_sent:
                self.message = f"Live: {event.message} [{event.code.value}]"
        return rest, show

    def _shown(self, flight: Flight, result: Result) -> Shown | None:
        try:
            placement = placement_for(flight.job, flight.request, flight.input, result)
        except PluginError as exc:
            self.message = f"Live: {exc}"
            return None
        if not placement.layers:
            return None
        self.shown = Shown(flight.job, flight.request, flight.input, result, placement.layers[0])
        return self.shown
