"""The host session ↔ Blender's main thread.

The websocket lives on the client's background thread; Blender's data may only be touched
from the main thread. The job tracking, the reconnect's fetches, what the server offers and
how each job ends are the host-neutral session's (``sfumato.hostsession``, over
``sfumato.hostlink``); the bridge only turns its updates into ``WindowManager.sfumato`` (the
connection, the running job, progress, preview: never saved with a file) and applies results
through the add-on's ``apply`` function, from a ``bpy.app.timers`` timer (or, for
``wait=True`` and headless runs, from a blocking wait on the caller's thread). ``BRIDGE`` is
the add-on's one module-level object, made in ``register``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import bpy

from sfumato.client import ConnectionFailed, JobWasCancelled
from sfumato.hostlink import HostLink
from sfumato.hostsession import (
    JobChanged,
    JobEnded,
    JobRecord,
    JobState,
    Link,
    Linked,
    ModelsChanged,
    Notice,
    Offer,
    Unlinked,
    Update,
)
from sfumato.protocol import Result

from . import props
from . import scene as scene_io
from .pending import Pending

log = logging.getLogger(__name__)
BUSY_INTERVAL = 0.1  # seconds between timer calls while a job runs
IDLE_INTERVAL = 0.5
__all__ = ["Bridge", "Pending", "get", "start", "stop", "tick"]

Applier = Callable[[Any, Pending, Result], str]


class Bridge:
    def __init__(self, apply: Applier) -> None:
        # One link (and one client identity) for the whole Blender session: a reconnect or a
        # new URL makes a new Client under the same client_id, so it can fetch what ran.
        self.link: HostLink[Pending] = HostLink("blender")
        self._applied: list[Pending] = []  # applied by an update, awaiting tick()'s undo push
        self._apply = apply
        # Pending.kind → what ends such a job instead of apply (live jobs: ``live.ended``)
        self.enders: dict[str, Callable[[JobRecord[Pending]], None]] = {}

    # ------------------------------------------------------------------ state

    @property
    def client(self) -> Any:
        return self.link.client

    @property
    def client_id(self) -> str | None:
        return self.link.session.client_id

    @property
    def offer(self) -> Offer:
        return self.link.session.offer

    @property
    def pending(self) -> dict[str, Pending]:
        """The jobs that have not ended yet, by id."""
        return {job_id: r.purpose for job_id, r in self.link.session.jobs.items()}

    @property
    def connected(self) -> bool:
        return self.link.connected

    # ------------------------------------------------------------------ connection

    def ensure_connected(self, url: str, token: str, timeout: float = 5.0) -> Offer:
        """Connect (blocking; a local server answers in milliseconds) unless connected to the
        same place already. Raises ConnectionFailed with the fix."""
        if self.connected and self.link.same_place(url, token or None):
            return self.offer
        _runtime_set(connection="CONNECTING", error="")
        try:
            updates = self.link.connect(url, token or None, timeout)
        except ConnectionFailed as exc:
            _runtime_set(connection="DISCONNECTED", error=str(exc))
            raise
        self.show(updates)
        return self.offer

    def connect_async(self, url: str, token: str) -> None:
        """Connect on a thread (the Connect button); tick() shows the outcome."""
        _runtime_set(connection="CONNECTING", error="")
        self.link.connect_async(url, token or None)

    def close(self) -> None:
        self.link.close()

    # ------------------------------------------------------------------ jobs

    def submit(self, pending: Pending) -> None:
        """Check and send the job (HostError: refused, nothing sent); its events arrive
        through tick()."""
        self.link.submit(pending.job, pending, pending.label)
        rt = props.runtime()
        rt.busy, rt.job_id, rt.job_kind = True, pending.job.id, pending.kind
        rt.progress, rt.status, rt.error = 0.0, "sent", ""

    def run(self, pending: Pending, timeout: float | None = None) -> Pending:
        """Submit and block until the job ends and its result is applied (``wait=True``).
        Raises JobWasCancelled, ConnectionFailed or TimeoutError; a failed job or result
        comes back with ``pending.failure`` set."""
        self.submit(pending)
        job_id = pending.job.id
        try:
            record = self.link.wait(job_id, timeout, on_update=self._show)
        except TimeoutError:
            self._finish(pending, error=f"job {job_id} took too long; cancelled")
            raise
        except ConnectionFailed as exc:
            message = f"{exc}; once the server runs again, run the job again"
            if (ended := self.link.session.fail(job_id, message)) is not None:
                self._show(ended)
            _runtime_set(connection="DISCONNECTED")  # never Connected to a server that is gone
            raise ConnectionFailed(message) from None
        except BaseException as exc:  # a bug: still free the panel, then let it show
            if ended := self.link.session.fail(job_id, f"job {job_id} stopped: {exc!r}"):
                self._show(ended)
            raise
        finally:  # no undo step from inside an operator (nor a timer, later, for a script)
            self._applied = [p for p in self._applied if p is not pending]
        if record.state is JobState.CANCELLED:
            raise JobWasCancelled(f"job {job_id} was cancelled")
        return pending

    def cancel(self, job_id: str) -> None:
        self.link.cancel(job_id)

    # ------------------------------------------------------------------ events

    def tick(self) -> float:
        """One timer call: the session's updates into Blender. Never raises: Blender
        unregisters a timer that raises, and then no result would ever be applied again."""
        try:
            self._tick()
        except Exception as exc:  # whatever it is: the timer must survive, the panel says it
            log.exception("Sfumato's timer hit an unexpected error")
            try:
                _runtime_set(
                    error=f"unexpected error in the Sfumato add-on: {exc!r}; please report it"
                )
            except Exception:  # nowhere to say it: the log has it
                log.exception("could not show the error")
        return BUSY_INTERVAL if self.link.session.busy else IDLE_INTERVAL

    def _tick(self) -> None:
        self.show(self.link.poll())
        self._sync()
        applied, self._applied = self._applied, []
        for pending in applied:
            _undo_push(f"Sfumato: {pending.kind.title()} result")

    def handle(self, event: object) -> None:
        """One client event, straight to the session and then to Blender (main thread)."""
        updates = self.link.session.handle(event)
        self.link.flush()
        self.show(updates)

    def show(self, updates: Iterable[Update]) -> None:
        for update in updates:
            self._show(update)
        _redraw()

    def _show(self, update: Update) -> None:
        rt = props.runtime()
        if isinstance(update, Linked):
            welcome = update.welcome
            rt.connection, rt.server_version = "CONNECTED", welcome.server
            rt.notice, rt.error = welcome.notice, ""
            offer = self.link.session.offer  # the machine's facts in short (welcome.system)
            rt.system, rt.system_warnings = offer.system_line(), "\n".join(offer.system_warnings())
            rt.max_steps, rt.max_image_side = (
                welcome.limits.max_steps,
                welcome.limits.max_image_side,
            )
            if not welcome.ready:
                rt.error = f"the server cannot run jobs now: {welcome.status}"
            for record in self.link.session.jobs.values():
                self._job_status(record)
        elif isinstance(update, Unlinked):
            rt.connection = "DISCONNECTED"
            record = self.link.session.record(rt.job_id)
            if update.connecting:  # never connected: why, and the fix
                rt.error = update.reason
            elif record is not None:
                rt.error = record.message
        elif isinstance(update, ModelsChanged):
            self._fill_models()
        elif isinstance(update, JobChanged):
            self._job_status(update.record)
        elif isinstance(update, JobEnded):
            self._ended(update.record)
        elif isinstance(update, Notice):
            rt.error = update.message

    def _job_status(self, record: JobRecord[Pending]) -> None:
        rt = props.runtime()
        if rt.job_id != record.id:
            return
        rt.status = record.status()
        if record.state is JobState.RUNNING and record.stage != "loading":
            rt.progress = record.progress
        if record.state is JobState.SUSPENDED:
            rt.error = record.message
        if record.preview is not None:
            rt.preview = scene_io.show_preview(rt.preview, record.preview.to_numpy())

    def _ended(self, record: JobRecord[Pending]) -> None:
        pending = record.purpose
        if (ender := self.enders.get(pending.kind)) is not None:
            ender(record)  # its own way to show a result: no history, no panel status
            return
        if record.state is JobState.DONE and record.result is not None:
            self._apply_result(pending, record.result)
        elif record.state is JobState.CANCELLED:
            self._finish(pending, status="cancelled")
        else:
            self._finish(pending, error=record.message)

    def _apply_result(self, pending: Pending, result: Result) -> None:
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
            self._finish(pending, error=pending.failure)
            return
        self._finish(pending, status=pending.message)
        self._applied.append(pending)

    # ------------------------------------------------------------------ Blender's state

    def _finish(self, pending: Pending, *, status: str = "", error: str = "") -> None:
        if error:
            pending.failure = pending.failure or error
        rt = props.runtime()
        if rt.job_id == pending.job.id:
            rt.busy = False
            rt.status, rt.error = status or ("failed" if error else ""), error
            if not error and status != "cancelled":
                rt.progress = 1.0

    def _sync(self) -> None:
        """The window manager says what the session knows: after a file was opened (a new
        window manager, all defaults) the panel shows the live connection again, and a busy
        flag no job stands behind (an undo, the add-on re-enabled) is freed, not stuck."""
        rt, session = props.runtime(), self.link.session
        if session.link is Link.CONNECTED and rt.connection != "CONNECTED":
            assert session.welcome is not None
            self._show(Linked(session.welcome))
            self._fill_models()
        elif session.link is Link.DISCONNECTED and rt.connection == "CONNECTED":
            rt.connection = "DISCONNECTED"  # closed by the add-on itself (no event follows)
        if rt.busy and rt.job_id not in session.jobs:
            rt.busy, rt.status = False, ""

    def _fill_models(self) -> None:
        """Base models and LoRAs as the server lists them; each LoRA with its family and
        approval, so the panel lists those of the chosen model and greys the unapproved."""
        rt, offer = props.runtime(), self.offer
        loras = {item.name: (item.use, item.weight) for item in rt.loras}
        rt.models.clear()
        rt.loras.clear()
        rt.default_model = offer.default_model
        for info in offer.base_models():
            item = rt.models.add()
            item.name, item.family, item.tiny = info.name, info.family, info.tiny
            item.description = info.description
        for info in offer.models:
            if info.kind == "lora":
                item = rt.loras.add()
                item.name, item.family, item.approved = info.name, info.family, info.approved
                item.note = info.description if info.approved else "not approved on this server"
                item.use, item.weight = loras.get(info.name, (False, 1.0))
                item.use = item.use and info.approved
        for each in bpy.data.scenes:
            if each.sfumato.model and offer.model(each.sfumato.model) is None:
                each.sfumato.model = ""  # a model this server lacks: its default


def _runtime_set(**values: Any) -> None:
    rt = props.runtime()
    for name, value in values.items():
        setattr(rt, name, value)


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
