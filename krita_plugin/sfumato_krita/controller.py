"""Runs jobs for the plugin: reads the document (``canvas``), builds and sends the job
(``model``), and lands each result in the document it came from.

No widgets and no timer here: whoever owns the connection feeds :meth:`Controller.handle` with
client events — the extension through its ``bridge`` (a QTimer on Krita's main thread), the
kritarunner tests straight from ``Client.events()``. After each batch it sends what the host
session asks for: the fetches of the jobs that ran when a connection broke.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sfumato.protocol import Job, SfumatoError

from . import canvas
from .jobs import PluginError, history_entry
from .model import Ended, SendFailed, Session


class Sender(Protocol):
    """What sends jobs: the bridge (threaded) or a plain ``sfumato.client.Client``."""

    def submit(self, job: Job) -> str: ...

    def cancel(self, job_id: str) -> None: ...

    def fetch(self, job_id: str) -> None: ...


class Controller:
    def __init__(
        self, session: Session, sender: Sender, is_open: Callable[[Any], bool] = lambda d: True
    ) -> None:
        self.session = session
        self.sender = sender
        self._is_open = is_open  # a closed document's wrapper must not be written to
        self._docs: dict[str, Any] = {}  # job id → the document it came from

    def generate(self, doc: Any) -> str | None:
        """Start a job on ``doc`` with the current settings; the job id, or None when the
        request was refused (the session then says why)."""
        if doc is None:
            self.session.refuse("open an image first")
            return None
        try:
            job = self.session.start_job(canvas.read_input(doc, self.session.settings))
        except PluginError as exc:
            if self.session.message != str(exc):
                self.session.refuse(str(exc))
            return None
        self._docs[job.id] = doc
        try:
            self.sender.submit(job)
        except SfumatoError as exc:  # a direct Client raises here; the bridge reports later
            self.handle([SendFailed(job.id, str(exc))])
        return job.id

    def cancel(self) -> None:
        """Stop the job the docker shows (queued or running)."""
        record = self.session.job()
        if record is None or record.state.finished:
            return
        try:
            self.sender.cancel(record.id)
        except SfumatoError as exc:
            self.handle([SendFailed(record.id, str(exc))])

    def handle(self, events: Iterable[object]) -> None:
        for event in events:
            for ended in self.session.handle(event):
                self._land(ended)
        for fetch in self.session.host.to_send():
            # a connection that broke again raises: its Disconnected follows, then a refetch
            with contextlib.suppress(SfumatoError):
                self.sender.fetch(fetch.id)

    def _land(self, ended: Ended) -> None:
        record, placement = ended.record, ended.placement
        doc = self._docs.pop(record.id, None)
        if placement is None or doc is None or record.result is None:
            return
        if not self._is_open(doc):
            self.session.orphaned(record.id)
            return
        names = canvas.apply(doc, placement)
        target = record.purpose
        target.layers = names
        entry = history_entry(record.job, target.request, target.input, record.result, names)
        canvas.append_history(doc, entry)
        self.session.changed()
