"""The client both hosts and the CLI use: a websocket on a background thread, events out
through a thread-safe queue.

A host (Blender, Krita) never blocks on the network: it calls :meth:`Client.submit` and
drains :meth:`Client.events` from its own UI timer on its main thread. Scripts and the CLI
use the blocking helpers :meth:`Client.connect` and :meth:`Client.wait`. No asyncio and no
torch here: only the protocol, msgpack and websockets' threading client.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import queue
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from . import __version__
from .clientrefs import InputRefs
from .protocol import (
    Cancel,
    Cancelled,
    Control,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    JobParams,
    Limits,
    ListModels,
    Message,
    Models,
    ProtocolError,
    Result,
    ServerMessage,
    SfumatoError,
    Task,
    Welcome,
    decode_server_message,
    encode,
    fragments,
)
from .protocol.arrays import Array
from .protocol.refs import Place

DEFAULT_URL = "ws://127.0.0.1:8746"
# websockets ≥ 17 warns unless a directly held connection says so; older ones lack the flag.
DIRECT: dict[str, Any] = (
    {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
)


def default_url() -> str:
    return os.environ.get("SFUMATO_URL") or DEFAULT_URL


def check_url(url: str) -> str:
    """``url`` without surrounding spaces when a connection can be tried on it, else
    ConnectionFailed naming what is wrong and the form that works. websockets answers some
    malformed URLs with a bare ValueError (a port over 65535, a broken IPv6 address), which a
    host would show as a traceback."""
    text = url.strip()
    fix = f"write it as ws://HOST:PORT, e.g. {DEFAULT_URL}"
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        raise ConnectionFailed(f"the server URL {url!r} is not valid ({exc}); {fix}") from None
    try:
        port = parts.port
    except ValueError:
        raise ConnectionFailed(
            f"the server URL {url!r} is not valid: its port must be a number from 1 to 65535; {fix}"
        ) from None
    if parts.scheme.lower() not in ("ws", "wss"):
        raise ConnectionFailed(f"the server URL {url!r} must start with ws:// or wss://; {fix}")
    if not parts.hostname:
        raise ConnectionFailed(f"the server URL {url!r} names no host; {fix}")
    if port == 0:
        raise ConnectionFailed(
            f"the server URL {url!r} has port 0, which no server listens on; {fix}"
        )
    return text


class ConnectionFailed(SfumatoError, ConnectionError):
    """No server answered, or it refused us; the message says how to fix it."""


class JobFailed(SfumatoError):
    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code.value}: {error.message}")
        self.error = error


class JobWasCancelled(SfumatoError):
    pass


def unreadable(exc: ProtocolError) -> Error:
    """The event for a server message this client cannot decode. It names the job when the
    message's header did, so that job ends as an error instead of waiting forever."""
    if exc.code is ErrorCode.FRAME_TOO_LARGE and exc.id is not None:
        return Error(
            ErrorCode.RESULT_TOO_LARGE,
            f"the server's message for job {exc.id!r} is larger than the max_message_bytes it "
            f"announced ({exc.message}); run the job again with fewer variants or a smaller "
            "size, and tell the server's admin",
            id=exc.id,
            field="params.variants",
        )
    return Error(
        exc.code, f"unreadable message from the server: {exc.message}", id=exc.id, field=exc.field
    )


@dataclass(frozen=True)
class Connected:
    welcome: Welcome


@dataclass(frozen=True)
class Disconnected:
    reason: str


ClientEvent = Connected | Disconnected | ServerMessage


class ConnectionState(Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


def make_job(
    task: Task | str,
    image: Any = None,
    mask: Any = None,
    *,
    id: str | None = None,
    controls: Sequence[Control] = (),
    **params: Any,
) -> Job:
    """A job with a fresh id; ``image``/``mask`` may be numpy arrays or protocol Arrays."""

    def wrap(a: Any) -> Array | None:
        return a if a is None or isinstance(a, Array) else Array.from_numpy(a)

    job_params = JobParams(**params)
    return Job(
        id or uuid.uuid4().hex, Task(task), job_params, wrap(image), wrap(mask), tuple(controls)
    )


@dataclass
class Client:
    url: str = field(default_factory=default_url)
    token: str | None = None
    client_id: str | None = None  # kept from the server's welcome, reused on reconnect
    name: str = "sfumato-client"
    welcome: Welcome | None = None
    state: ConnectionState = ConnectionState.DISCONNECTED

    def __post_init__(self) -> None:
        self._events: queue.Queue[ClientEvent] = queue.Queue()
        self._held: list[ClientEvent] = []  # events set aside by wait() for other jobs
        self._ws: ClientConnection | None = None
        self._reader: threading.Thread | None = None
        self._limits = Limits()  # the server's announced limits, from its welcome
        self._refs: InputRefs | None = None  # inputs by hash / shared memory (clientrefs.py)

    # ------------------------------------------------------------------ connection

    def connect(self, timeout: float = 10.0) -> Welcome:
        """Open the websocket, say hello, and wait for the welcome. Blocking."""
        self.close()
        url = check_url(self.url)
        self.state = ConnectionState.CONNECTING
        try:
            ws = connect(  # type: ignore[call-overload]
                url, compression=None, max_size=None, open_timeout=timeout,
                ping_interval=20, ping_timeout=60, user_agent_header=f"sfumato-client/{__version__}", **DIRECT,
            )  # fmt: skip
        except InvalidStatus as exc:
            self.state = ConnectionState.DISCONNECTED
            raise ConnectionFailed(
                f"{self.url} refused the connection (HTTP {exc.response.status_code}); "
                "is it a Sfumato server, and is this origin allowed?"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError) as exc:
            self.state = ConnectionState.DISCONNECTED  # ValueError: a URL websockets refuses
            raise ConnectionFailed(
                f"no Sfumato server answers at {self.url} ({exc}); start one with `sfumato serve` "
                "or check the URL"
            ) from None
        self._ws = ws
        self._send(Hello(self.name, __version__, self.token, self.client_id))
        try:
            first = decode_server_message(ws.recv(timeout=timeout))
        except (ConnectionClosed, TimeoutError, ProtocolError) as exc:
            self.close()
            raise ConnectionFailed(f"{self.url} did not welcome us: {exc}") from None
        if isinstance(first, Error):
            self.close()
            raise ConnectionFailed(f"{self.url} refused us: {first.message}")
        if not isinstance(first, Welcome):
            self.close()
            raise ConnectionFailed(f"{self.url} answered hello with {first.TYPE}, not welcome")
        self.welcome = first
        self.client_id = first.client_id
        # Decode what this server may send, no more: its announced max_message_bytes, and the
        # transport's cap at twice that as on the server (docs/protocol.md section 7).
        self._limits = first.limits
        if hasattr(ws.protocol, "max_message_size"):  # websockets ≥ 14
            ws.protocol.max_message_size = 2 * first.limits.max_message_bytes
        self._refs = InputRefs(first)
        self.state = ConnectionState.CONNECTED
        self._events.put(Connected(first))
        self._reader = threading.Thread(
            target=self._read, args=(ws,), name="sfumato-client", daemon=True
        )
        self._reader.start()
        return first

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        self._reader = None
        if self._refs is not None:
            self._refs.close()
        self.state = ConnectionState.DISCONNECTED

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests (never block)

    def submit(self, job: Job) -> str:
        """Send a job (big inputs by hash or shared memory when the server offers it; a miss
        is resent with the bytes without the host noticing: clientrefs.py)."""
        refs = self._refs
        self._send(job, None if refs is None else refs.place_for(job))
        return job.id

    def cancel(self, job_id: str) -> None:
        self._send(Cancel(job_id))

    def fetch(self, job_id: str) -> None:
        self._send(Fetch(job_id))

    def request_models(self) -> None:
        self._send(ListModels())

    # ------------------------------------------------------------------ events

    def events(self) -> list[ClientEvent]:
        """Everything that arrived since the last call; for the host's UI timer."""
        out, self._held = self._held, []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def next_event(self, timeout: float | None = None) -> ClientEvent | None:
        if self._held:
            return self._held.pop(0)
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait(
        self,
        job_id: str,
        timeout: float | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> Result:
        """Block until the job's result; raises JobFailed, JobWasCancelled, ConnectionFailed
        or TimeoutError. Events of other jobs are kept for :meth:`events`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._take(
                lambda e: getattr(e, "id", None) == job_id, deadline, f"job {job_id}"
            )
            if on_event is not None:
                on_event(event)
            if isinstance(event, Result):
                return event
            if isinstance(event, Error):
                raise JobFailed(event)
            if isinstance(event, Cancelled):
                raise JobWasCancelled(f"job {job_id} was cancelled")

    def run(
        self,
        job: Job,
        timeout: float | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> Result:
        """Submit and wait (scripts, the CLI, Blender's ``wait`` option)."""
        return self.wait(self.submit(job), timeout, on_event)

    def models(self, timeout: float = 10.0) -> Models:
        self.request_models()
        event = self._take(
            lambda e: isinstance(e, Models), time.monotonic() + timeout, "the model list"
        )
        assert isinstance(event, Models)
        return event

    # ------------------------------------------------------------------ internals

    def _take(
        self, match: Callable[[ClientEvent], bool], deadline: float | None, what: str
    ) -> ClientEvent:
        """The next event ``match`` accepts — first among those set aside, then as they
        arrive; the others are set aside, in order, for :meth:`events`."""
        for n, event in enumerate(self._held):
            if match(event):
                return self._held.pop(n)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                raise TimeoutError(f"{what} did not arrive in time") from None
            if match(event):
                return event
            self._held.append(event)
            if isinstance(event, Disconnected):
                raise ConnectionFailed(f"lost the server while waiting for {what}: {event.reason}")

    def _send(self, message: Message, place: Place | None = None) -> None:
        if self._ws is None:
            raise ConnectionFailed(f"not connected to {self.url}; connect first")
        chunks = encode(message, place)
        try:
            self._ws.send(chunks[0] if len(chunks) == 1 else fragments(chunks))
        except ConnectionClosed as exc:
            raise ConnectionFailed(
                f"the server at {self.url} closed the connection: {exc}"
            ) from None

    def _resend(self, job: Job, place: Place | None) -> None:
        """A job whose input the server no longer kept, again with its bytes (reader thread;
        websockets serialises sends). A lost connection shows as Disconnected."""
        with contextlib.suppress(ConnectionFailed):
            self._send(job, place)

    def _read(self, ws: ClientConnection) -> None:
        reason = "closed"
        try:
            for data in ws:
                if isinstance(data, str):
                    continue
                try:
                    event = decode_server_message(data, self._limits)
                except ProtocolError as exc:  # a newer or broken server: report, keep reading
                    self._events.put(unreadable(exc))
                    continue
                refs = self._refs
                if refs is None or not refs.after(event, self._resend):
                    self._events.put(event)
        except ConnectionClosed as exc:
            reason = str(exc)
        except OSError as exc:
            reason = str(exc)
        if self._ws is ws:
            self.state = ConnectionState.DISCONNECTED
        self._events.put(Disconnected(reason))
