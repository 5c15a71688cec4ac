"""A :class:`~sfumato.hostsession.HostSession` over a real connection: the thin I/O layer
that both host plugins may use (Blender does; Krita keeps its own sender thread and feeds the
same session).

Connecting blocks (:meth:`HostLink.connect`) or runs on a thread (:meth:`connect_async`);
sending happens on the caller's thread (websockets' threading client serialises sends);
events are drained by :meth:`poll` from the host's UI timer, so the session is only ever
touched on the host's main thread. No asyncio is exposed, and nothing here knows a host.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic

from .client import Client, Connected, ConnectionFailed, Disconnected
from .hostsession import (
    HostError,
    HostSession,
    JobEnded,
    JobRecord,
    Link,
    P,
    Update,
)
from .protocol import Job, Welcome

OnUpdate = Callable[[Update], None]


class HostLink(Generic[P]):
    def __init__(self, name: str, session: HostSession[P] | None = None) -> None:
        self.name = name  # the client name the server logs (``hello.client``)
        self.session: HostSession[P] = session or HostSession()
        self.client: Client | None = None
        self._connecting: threading.Thread | None = None
        self._failed: list[str] = []  # a connect thread's failure, for the next poll

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self.session.link is Link.CONNECTED and self.client is not None

    def same_place(self, url: str, token: str | None) -> bool:
        client = self.client
        return client is not None and (client.url, client.token) == (url, token or None)

    def connect(self, url: str, token: str | None, timeout: float = 5.0) -> list[Update]:
        """Connect (blocking) unless connected to the same place already; returns the
        updates (``Linked`` …). Raises ConnectionFailed with the fix."""
        if self.connected and self.same_place(url, token):
            return []
        client = self._new_client(url, token)
        try:
            welcome = client.connect(timeout)
        except ConnectionFailed as exc:
            self.session.handle(Disconnected(str(exc)))
            raise
        return self._after_welcome(welcome)

    def connect_async(self, url: str, token: str | None) -> None:
        """Connect on a thread (a Connect button); :meth:`poll` reports the outcome."""
        if self._connecting is not None and self._connecting.is_alive():
            return
        client = self._new_client(url, token)

        def connect() -> None:
            try:
                client.connect()
            except ConnectionFailed as exc:
                self._failed.append(str(exc))

        self._connecting = threading.Thread(target=connect, name="sfumato-connect", daemon=True)
        self._connecting.start()

    def _new_client(self, url: str, token: str | None) -> Client:
        if self.client is not None:
            self.client.close()
        self.session.connecting()
        self.client = Client(url, token or None, client_id=self.session.client_id, name=self.name)
        return self.client

    def close(self) -> None:
        """Close the connection; the session says disconnected (its jobs stay tracked: a
        later connect fetches them)."""
        if self.client is not None:
            self.client.close()
            self.session.handle(Disconnected("closed by this host"))
        self.client = None

    def _after_welcome(self, welcome: Welcome) -> list[Update]:
        updates = self.session.handle(Connected(welcome))
        self.flush()
        return updates

    # ------------------------------------------------------------------ jobs

    def submit(self, job: Job, purpose: P, label: str = "") -> JobRecord[P]:
        """Check, record and send ``job``; raises HostError (nothing sent) or
        ConnectionFailed (the record is ended as failed)."""
        if self.client is None:
            raise HostError("not connected: press Connect (is `sfumato serve` running?)")
        record = self.session.track(job, purpose, label)
        try:
            self.client.submit(job)
        except ConnectionFailed as exc:
            self.session.fail(job.id, str(exc))
            raise
        return record

    def cancel(self, job_id: str) -> None:
        if self.client is not None and self.session.record(job_id) is not None:
            self.client.cancel(job_id)

    # ------------------------------------------------------------------ events

    def poll(self) -> list[Update]:
        """Everything that happened since the last call (the host's timer calls this)."""
        failed, self._failed = self._failed, []
        updates = self.session.handle_all(Disconnected(reason) for reason in failed)
        if self.client is not None:
            updates += self.session.handle_all(self.client.events())
        self.flush()
        return updates

    def wait(
        self, job_id: str, timeout: float | None = None, on_update: OnUpdate | None = None
    ) -> JobRecord[P]:
        """Block until ``job_id`` ends (scripts, background runs); every update goes to
        ``on_update`` as it happens. Returns the ended record (any state); raises
        TimeoutError (the job is cancelled and ended as failed) or ConnectionFailed when the
        connection drops (the job stays tracked: a reconnect fetches it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            client = self.client
            if client is None:
                raise ConnectionFailed("not connected: press Connect")
            left = None if deadline is None else deadline - time.monotonic()
            event = client.next_event(timeout=None if left is None else max(0.0, left))
            if event is None:
                self.cancel(job_id)
                self.session.fail(job_id, f"job {job_id} took too long; cancelled")
                raise TimeoutError(f"job {job_id} took too long; cancelled")
            for update in self.session.handle(event):
                if on_update is not None:
                    on_update(update)
                if isinstance(update, JobEnded) and update.record.id == job_id:
                    self.flush()
                    return update.record
            self.flush()
            if isinstance(event, Disconnected):
                raise ConnectionFailed(f"lost the server while job {job_id} ran: {event.reason}")

    def flush(self) -> None:
        """Send what the session asks for (a reconnect's fetches); after feeding it events
        by hand, call this."""
        client = self.client
        if client is None:
            return
        for message in self.session.to_send():
            try:
                client.fetch(message.id)
            except ConnectionFailed:
                return  # the Disconnected event follows; the next welcome fetches again
