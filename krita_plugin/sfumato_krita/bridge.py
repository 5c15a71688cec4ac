"""The client's threads ↔ Krita's main thread.

``sfumato.client.Client`` reads the websocket on its own thread and queues events; a QTimer
here drains that queue on Krita's main thread, the only thread allowed to touch documents and
widgets. Connecting, sending and closing block on the network, so they run on one worker
thread of ours: Krita never waits for a server. Failures come back as events (``Disconnected``,
``SendFailed``), never as exceptions in the UI.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from sfumato.client import Client, ConnectionFailed, Disconnected
from sfumato.protocol import Job, SfumatoError

from .model import SendFailed
from .qt import QObject, QTimer

POLL_MS = 50

Events = Callable[[list[object]], None]


class Bridge(QObject):
    def __init__(self, on_events: Events, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_events = on_events
        self._client: Client | None = None
        self.connects = 0  # connections opened: one per Krita, however many windows
        self._work: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._local: queue.Queue[object] = queue.Queue()  # events made by our worker
        self._worker = threading.Thread(target=self._run, name="sfumato-krita", daemon=True)
        self._worker.start()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()

    # ------------------------------------------------------------------ requests (return at once)

    def connect_to(self, url: str, token: str, client_id: str | None) -> None:
        """Connect as ``client_id`` (the host session's, kept across connections: the
        server files results under it, so a reconnect can fetch them)."""
        old = self._client
        self._client = new = Client(url, token or None, client_id=client_id, name="krita")
        self.connects += 1

        def connect() -> None:
            if old is not None:
                old.close()
            try:
                new.connect()
            except ConnectionFailed as exc:
                self._local.put(Disconnected(str(exc)))

        self._work.put(connect)

    def submit(self, job: Job) -> str:
        client = self._client

        def send() -> None:
            if client is None:
                self._local.put(SendFailed(job.id, "not connected: press Connect"))
                return
            try:
                client.submit(job)
            except SfumatoError as exc:
                self._local.put(SendFailed(job.id, str(exc)))

        self._work.put(send)
        return job.id

    def cancel(self, job_id: str) -> None:
        client = self._client
        if client is not None:
            self._work.put(lambda: self._quietly(client.cancel, job_id))

    def fetch(self, job_id: str) -> None:
        """Ask again for a job a broken connection ran (the server re-attaches a running
        one, or sends how it ended)."""
        client = self._client
        if client is not None:
            self._work.put(lambda: self._quietly(client.fetch, job_id))

    def close(self) -> None:
        """Stop the timer and the worker; the connection closes on the worker."""
        self._timer.stop()
        client, self._client = self._client, None
        if client is not None:
            self._work.put(client.close)
        self._work.put(None)

    # ------------------------------------------------------------------ main thread

    def poll(self) -> None:
        """Hand everything that arrived to ``on_events`` (the QTimer calls this)."""
        events: list[object] = []
        while True:
            try:
                events.append(self._local.get_nowait())
            except queue.Empty:
                break
        if self._client is not None:
            events.extend(self._client.events())
        if events:
            self._on_events(events)

    # ------------------------------------------------------------------ worker thread

    def _run(self) -> None:
        while (task := self._work.get()) is not None:
            task()

    def _quietly(self, call: Callable[[str], None], job_id: str) -> None:
        try:
            call(job_id)
        except SfumatoError as exc:
            self._local.put(SendFailed(job_id, str(exc)))
