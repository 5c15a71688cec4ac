"""Krita Live on Krita's main thread (issue 12, item 3): a QTimer polls the document
cheaply (``livecanvas.look``), the host-neutral loop (``livemodel`` over
``sfumato.hostlive``) decides when a live refine goes out, the bridge sends it from its
worker thread, and results land in the one live layer. The UI thread never waits on the
network: sending and cancelling are queued to the bridge's thread, events arrive through
its QTimer.

One per Krita instance, owned by the :class:`~.plugin.Plugin` beside the session; every
window's docker shows it (``livebox``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sfumato.client import Disconnected
from sfumato.protocol import SfumatoError

from . import canvas, livecanvas
from .controller import Sender
from .jobs import GROUP, Placement, Rect, history_entry, layer_name
from .livemodel import LiveState, Shown, settings_key
from .model import Session
from .qt import QObject, QTimer

POLL_MS = 100  # how often Live looks at the document (a look is a few thumbnails)

Listener = Callable[[], None]


class LiveController(QObject):
    def __init__(
        self,
        session: Session,
        sender: Sender,
        is_open: Callable[[Any], bool] = lambda d: True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = LiveState(session)
        self.session = session
        self.sender = sender
        self._is_open = is_open
        self.pull: Callable[[], None] | None = None  # the docker copies its widgets to settings
        self._last_look: object = None
        self._rect: Rect | None = None  # where the live layer holds the last result
        self._listeners: list[Listener] = []
        self.looks = 0  # polls taken (tests: Live looks without reading the canvas)
        self.reads = 0  # region reads (one per job sent)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.tick)

    @property
    def on(self) -> bool:
        return self.state.on

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    # ------------------------------------------------------------------ the toggle

    def start(self, doc: Any) -> bool:
        """Live on for ``doc``; False (the status says why) when it cannot start."""
        if self.on:
            return True
        if self.pull is not None:
            self.pull()
        refused = self.state.start(doc, time.monotonic())
        if refused is None:
            self._last_look, self._rect = None, None
            self._timer.start()
        self._changed()
        return refused is None

    def stop(self, reason: str = "") -> None:
        """Live off: cancel what runs, take the live layer out of the document."""
        doc = self.state.doc
        self._timer.stop()
        for job_id in self.state.stop(reason):
            with contextlib.suppress(SfumatoError):  # the bridge reports failures as events
                self.sender.cancel(job_id)
        if doc is not None and self._is_open(doc):
            livecanvas.remove(doc)
        self._rect = None
        self._changed()

    def apply(self) -> str | None:
        """Copy the live result into a new layer of the Sfumato group, with its history
        entry (as a Generate result); the new layer's name, or None with nothing shown."""
        shown, doc = self.state.shown, self.state.doc
        if shown is None or doc is None:
            self.state.message = "nothing to apply yet: paint, and wait for the live result"
            self._changed()
            return None
        seed = shown.result.seeds[0] if shown.result.seeds else 0
        name = layer_name(shown.request.prompt, seed, shown.request.mode)
        plan = replace(shown.plan, name=name, visible=True)
        names = canvas.apply(doc, Placement(GROUP, False, (plan,)))
        entry = history_entry(shown.job, shown.request, shown.input, shown.result, names)
        canvas.append_history(doc, {**entry, "live": True})
        self.state.applied += 1
        self.state.message = f"applied as the layer {name!r}"
        self._changed()
        return name

    # ------------------------------------------------------------------ timer and events

    def tick(self) -> None:
        """One poll (the QTimer): look, and send when the loop says so."""
        state, doc = self.state, self.state.doc
        if not state.on:
            return
        if doc is None or not self._is_open(doc):
            self.stop("Live stopped: its image was closed")
            return
        if self.pull is not None:
            self.pull()
        look = livecanvas.look(doc, settings_key(self.session.settings))
        self.looks += 1
        now = time.monotonic()
        state.observe(look, self._last_look, now)  # type: ignore[arg-type]
        self._last_look = look
        send = state.due(now)
        if send is None:
            return
        for job_id in send.cancel:
            with contextlib.suppress(SfumatoError):
                self.sender.cancel(job_id)
        try:
            inp = livecanvas.read(doc, self.session.settings)
        except Exception as exc:  # a PluginError (colour model…) or Krita's own refusal
            state.message = f"Live: {exc}"
            state.loop.skipped()
            self._changed()
            return
        self.reads += 1
        job = state.job_for(inp)
        if job is not None:
            try:
                self.sender.submit(job)
            except SfumatoError as exc:
                state.message = f"Live: {exc}"
        self._changed()

    def take(self, events: list[object]) -> list[object]:
        """Handle the live jobs' events; returns the others, for the session."""
        if not self.state.flights and not self.on:
            return events
        if self.on and any(isinstance(e, Disconnected) for e in events):
            self.stop("Live stopped: the connection was lost; turn it on again once connected")
        rest, shown = self.state.handle(events, time.monotonic())
        if shown is not None:
            self._show(shown)
        if len(rest) != len(events):
            self._changed()
        return rest

    def _show(self, shown: Shown) -> None:
        doc = self.state.doc
        if doc is None or not self._is_open(doc):
            return
        self._rect = livecanvas.show(doc, shown.plan, self._rect)
