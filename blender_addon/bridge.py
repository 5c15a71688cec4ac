"""The client's event queue ↔ Blender's main thread.

The websocket lives on the client's background thread; Blender's data may only be touched
from the main thread. So the bridge submits jobs and then, from a ``bpy.app.timers`` timer
(or, for ``wait=True`` and headless runs, from a blocking wait on the caller's thread), turns
client events into property updates and applies results through the add-on's ``apply``
function. ``BRIDGE`` is the add-on's one module-level object, made in ``register``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bpy

from sfumato.client import Client, Connected, ConnectionFailed, ConnectionState, Disconnected
from sfumato.protocol import Accepted, Cancelled, Error, Job, Models, Progress, Result, Welcome

from . import scene as scene_io

log = logging.getLogger(__name__)
BUSY_INTERVAL = 0.1  # seconds between timer calls while a job runs
IDLE_INTERVAL = 0.5


@dataclass
class Pending:
    """A submitted job and what its result is for; names, not bpy objects, since the user
    may delete or rename things while it runs (apply checks they are still there)."""

    job: Job
    kind: str  # props.KINDS identifier
    scene: str
    targets: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # what apply reported
    failure: str = ""  # why it could not be applied


Applier = Callable[[Any, Pending, Result], str]


class Bridge:
    def __init__(self, apply: Applier) -> None:
        self.client: Client | None = None
        # The identity the server files our results under: kept across clients (a reconnect
        # or a new URL makes a new Client) so that a reconnect can fetch what ran meanwhile.
        self.client_id: str | None = None
        self.pending: dict[str, Pending] = {}
        self._welcomed: Welcome | None = None  # the welcome already handled (fetches sent)
        self._applied: list[Pending] = []  # applied by handle(), awaiting tick()'s undo push
        self._apply = apply
        self._connecting: threading.Thread | None = None
        self._connect_error = ""  # set by the connecting thread, shown by tick()
        self._fetched: set[str] = set()  # jobs asked for again after a reconnect

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.state is ConnectionState.CONNECTED

    def ensure_connected(self, url: str, token: str, timeout: float = 5.0) -> Welcome:
        """Connect (blocking; a local server answers in milliseconds) unless connected to the
        same place already. Raises ConnectionFailed with the fix."""
        client = self.client
        if (
            self.connected
            and client is not None
            and (client.url, client.token) == (url, token or None)
        ):
            assert client.welcome is not None
            return client.welcome
        self._set_all(connection="CONNECTING", error="")
        client = self._new_client(url, token)
        try:
            welcome = client.connect(timeout)
        except ConnectionFailed as exc:
            self._set_all(connection="DISCONNECTED", error=str(exc))
            raise
        self._on_welcome(welcome)
        return welcome

    def connect_async(self, url: str, token: str) -> None:
        """Connect on a thread (the Connect button); tick() shows the outcome."""
        if self._connecting is not None and self._connecting.is_alive():
            return
        client = self._new_client(url, token)
        self._connect_error = ""
        self._set_all(connection="CONNECTING", error="")

        def connect() -> None:
            try:
                client.connect()
            except ConnectionFailed as exc:
                self._connect_error = str(exc)

        self._connecting = threading.Thread(target=connect, name="sfumato-connect", daemon=True)
        self._connecting.start()

    def _new_client(self, url: str, token: str) -> Client:
        previous = self.client
        if previous is not None:
            previous.close()
        self.client = Client(url, token or None, client_id=self.client_id, name="blender")
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    # ------------------------------------------------------------------ jobs

    def submit(self, pending: Pending) -> None:
        """Send the job; its events arrive through tick()."""
        if self.client is None:
            raise ConnectionFailed("not connected; press Connect in the Sfumato panel")
        self.client.submit(pending.job)
        self.pending[pending.job.id] = pending
        self._started(pending)

    def run(self, pending: Pending, timeout: float | None = None) -> Pending:
        """Submit and block until the job ends and its result is applied (``wait=True``).
        Raises JobFailed, JobWasCancelled, ConnectionFailed or TimeoutError."""
        self.submit(pending)
        assert self.client is not None
        try:
            self.client.wait(pending.job.id, timeout, on_event=self.handle)
        except TimeoutError:
            self.client.cancel(pending.job.id)
            self._finish(pending.job.id, error=f"job {pending.job.id} took too long; cancelled")
            raise
        except ConnectionFailed as exc:
            if not self.connected:  # the panel must not say Connected to a server that is gone
                self._set_all(connection="DISCONNECTED")
            message = f"{exc}; once the server runs again, run the job again"
            self._finish(pending.job.id, error=message)
            raise ConnectionFailed(message) from None
        except BaseException as exc:  # a bug: still free the panel, then let it show
            self._finish(pending.job.id, error=f"job {pending.job.id} stopped: {exc!r}")
            raise
        finally:  # no undo step from inside an operator (nor a timer, later, for a script)
            self._applied = [p for p in self._applied if p is not pending]
        return pending

    def cancel(self, job_id: str) -> None:
        if self.client is not None and job_id in self.pending:
            self.client.cancel(job_id)

    # ------------------------------------------------------------------ events

    def tick(self) -> float:
        """One timer call: drain the client's events into the scenes. Never raises: Blender
        unregisters a timer that raises, and then no result would ever be applied again."""
        try:
            self._tick()
        except Exception as exc:  # whatever it is: the timer must survive, the panel says it
            log.exception("Sfumato's timer hit an unexpected error")
            try:
                self._set_all(
                    error=f"unexpected error in the Sfumato add-on: {exc!r}; please report it"
                )
            except Exception:  # no scene to say it on: the log has it
                log.exception("could not show the error")
        return BUSY_INTERVAL if self.pending else IDLE_INTERVAL

    def _tick(self) -> None:
        if self._connect_error:
            error, self._connect_error = self._connect_error, ""
            self._set_all(connection="DISCONNECTED", error=error)
        if self.client is not None:
            for event in self.client.events():
                self.handle(event)
        self._forget_lost_jobs()
        applied, self._applied = self._applied, []
        for pending in applied:
            _undo_push(f"Sfumato: {pending.kind.title()} result")

    def handle(self, event: object) -> None:
        """Apply one client event to Blender's data (main thread only)."""
        if isinstance(event, Connected):
            if event.welcome is not self._welcomed:  # ensure_connected handled it already
                self._on_welcome(event.welcome)
        elif isinstance(event, Disconnected):
            self._set_all(connection="DISCONNECTED")
            if self.pending:
                self._set_all(
                    error=f"lost the server ({event.reason}); Connect to fetch the result"
                )
        elif isinstance(event, Models):
            self._fill_models(event.models, event.default_model)
        elif isinstance(event, Accepted):
            self._status(
                event.id, f"queued ({event.position} ahead)" if event.position else "starting"
            )
        elif isinstance(event, Progress):
            self._on_progress(event)
        elif isinstance(event, Result):
            self._on_result(event)
        elif isinstance(event, Error):
            message = f"{event.message} [{event.code.value}]"
            if event.id in self.pending and self._lost_to_restart(event):
                kind = self.pending[event.id].kind.title().lower()
                message = f"the {kind} job {event.id} was lost to a server restart — run it again"
            if event.id in self.pending:
                self._finish(event.id, error=message)
            else:
                self._set_all(error=message)
        elif isinstance(event, Cancelled):
            self._finish(event.id, status="cancelled")
        _redraw()

    def _on_welcome(self, welcome: Welcome) -> None:
        assert self.client is not None
        self._welcomed, self.client_id = welcome, welcome.client_id
        self._set_all(
            connection="CONNECTED", server_version=welcome.server, notice=welcome.notice, error=""
        )
        self._fill_models(welcome.models, welcome.default_model)
        for job_id in self.pending:  # after a reconnect: results filed under our client_id
            self._status(job_id, "reconnected; fetching the result")
            self._fetched.add(job_id)
            self.client.fetch(job_id)

    def _lost_to_restart(self, error: Error) -> bool:
        """A job the server no longer has because it restarted: it says so (``interrupted``),
        or, for servers before that code, answers our reconnect fetch with ``not_found``."""
        code = error.code.value
        return code == "interrupted" or (code == "not_found" and error.id in self._fetched)

    def _fill_models(self, models: tuple[Any, ...], default: str) -> None:
        for settings in _all_settings():
            loras = {item.name: (item.use, item.weight) for item in settings.loras}
            settings.models.clear()
            settings.loras.clear()
            for info in models:
                if info.kind == "base":
                    item = settings.models.add()
                    item.name, item.family, item.tiny = info.name, info.family, info.tiny
                    item.description = info.description
                elif info.kind == "lora":
                    item = settings.loras.add()
                    item.name, item.family = info.name, info.family
                    item.use, item.weight = loras.get(info.name, (False, 1.0))
            if settings.model not in settings.models:
                settings.model = default

    def _on_progress(self, event: Progress) -> None:
        settings = self._settings_of(event.id)
        if settings is None:
            return
        if event.stage == "loading":
            settings.status = "loading the model"
        else:
            settings.progress = event.step / event.total if event.total else 0.0
            settings.status = f"step {event.step} of {event.total}"
        if event.preview is not None:
            settings.preview = scene_io.show_preview(settings.preview, event.preview.to_numpy())

    def _on_result(self, result: Result) -> None:
        pending = self.pending.get(result.id)
        if pending is None:
            return
        target = bpy.data.scenes.get(pending.scene)
        try:
            if target is None:
                raise LookupError(f"scene {pending.scene!r} is gone")
            pending.message = self._apply(target, pending, result)
        except Exception as exc:  # any failure ends this job (apply took its changes back)
            log.warning("could not apply the result of job %s", result.id, exc_info=True)
            said = type(exc) in (LookupError, ValueError, RuntimeError, ReferenceError)
            detail = str(exc) if said else f"{type(exc).__name__}: {exc}"
            pending.failure = (
                f"could not apply the result of job {result.id}: {detail}; nothing was changed, "
                "run it again (and report it if it keeps failing)"
            )
            self._finish(result.id, error=pending.failure)
            return
        self._finish(result.id, status=pending.message)
        self._applied.append(pending)

    # ------------------------------------------------------------------ scene state

    def _started(self, pending: Pending) -> None:
        settings = _settings(pending.scene)
        if settings is not None:
            settings.busy, settings.job_id, settings.job_kind = True, pending.job.id, pending.kind
            settings.progress, settings.status, settings.error = 0.0, "sent", ""

    def _finish(self, job_id: str | None, *, status: str = "", error: str = "") -> None:
        pending = self.pending.pop(job_id or "", None)
        self._fetched.discard(job_id or "")
        settings = _settings(pending.scene) if pending is not None else None
        if pending is not None and error:
            pending.failure = pending.failure or error
        if settings is not None and settings.job_id == job_id:
            settings.busy = False
            settings.status, settings.error = status or ("failed" if error else ""), error
            if not error:
                settings.progress = 1.0 if status != "cancelled" else settings.progress

    def _forget_lost_jobs(self) -> None:
        """A scene that says busy with a job the bridge does not track (an undo back to while
        it ran, a .blend saved mid-job, the add-on re-enabled) is freed, not stuck running."""
        for settings in _all_settings():
            if settings.busy and settings.job_id not in self.pending:
                settings.busy, settings.status = False, ""

    def _status(self, job_id: str, text: str) -> None:
        settings = self._settings_of(job_id)
        if settings is not None:
            settings.status = text

    def _settings_of(self, job_id: str) -> Any:
        pending = self.pending.get(job_id)
        return None if pending is None else _settings(pending.scene)

    def _set_all(self, **values: Any) -> None:
        for settings in _all_settings():
            for name, value in values.items():
                setattr(settings, name, value)


def _settings(scene_name: str) -> Any:
    target = bpy.data.scenes.get(scene_name)
    return None if target is None else target.sfumato


def _all_settings() -> Iterator[Any]:
    for each in bpy.data.scenes:
        yield each.sfumato


def _undo_push(message: str) -> None:
    """One undo step for a result the timer applied, so Ctrl+Z takes it back in one go. The
    bpy module and ``blender -b`` have an undo stack too; where there is none (poll fails) or
    Blender refuses, the result simply stays applied without a step."""
    if not bpy.ops.ed.undo_push.poll():
        return
    try:
        bpy.ops.ed.undo_push(message=message[:63])
    except RuntimeError as exc:  # an operator's failure; the result itself is applied
        log.warning("no undo step for %s: %s", message, exc)


def _redraw() -> None:
    """Timers do not redraw panels; ask the 3D views to (no windows headless: no-op)."""
    wm = getattr(bpy.context, "window_manager", None)
    for window in wm.windows if wm is not None else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


# ---------------------------------------------------------------------- the add-on's one object

BRIDGE: Bridge | None = None


def get() -> Bridge:
    if BRIDGE is None:
        raise RuntimeError("the Sfumato add-on is not registered")
    return BRIDGE


def tick() -> float | None:
    """The registered timer (a module function, so unregister finds the same object). Tests
    and headless scripts call it directly: the bpy module never fires timers."""
    return None if BRIDGE is None else BRIDGE.tick()


def start(apply: Applier) -> None:
    global BRIDGE
    BRIDGE = Bridge(apply)
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=IDLE_INTERVAL, persistent=True)


def stop() -> None:
    global BRIDGE
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if BRIDGE is not None:
        BRIDGE.close()
    BRIDGE = None
