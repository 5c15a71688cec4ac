"""Live jobs as a host runs them: when to send the next one, which of the sent ones still
matter, and what a live job looks like on the wire. Host-neutral and sans-I/O, like
``hostsession``: Blender's live viewport and Krita's live painting run this same loop, so a
burst of edits costs the same few jobs in both.

The loop in short. A host reports every change (:meth:`LiveLoop.changed`); nothing is sent
until the changes have been quiet for ``debounce`` seconds (a camera drag or a brush stroke
is one change, not fifty). Then the host builds one job and reports it sent
(:meth:`LiveLoop.sent`). While that job is in flight, later changes wait: a new job goes out
once they are quiet again, and it **supersedes** the one in flight — on a server with the
``live`` capability (docs/protocol.md 4.2.7) the server does that itself (the old job ends
``cancelled``/``superseded`` at its next step); on an older server the loop asks the host to
cancel the old job first. Either way the host follows at most one job: the newest. A result
is shown only when it is newer than the last one shown, so a late result of a superseded job
never overwrites a newer picture. Turning live off (:meth:`LiveLoop.stop`) names every job
still running, for the host to cancel; after that nothing is sent until it is turned on again.

Time is the caller's (``now``, seconds on any monotonic clock): the loop never reads a clock,
so its tests choose the times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .hostoffer import Offer
from .protocol import Job
from .protocol.messages import LIVE_KEY_CHARS

DEBOUNCE = 0.25  # seconds of quiet after a change before its job is sent


@dataclass(frozen=True)
class Send:
    """Send a live job now; first cancel ``cancel`` (jobs this server will not supersede)."""

    cancel: tuple[str, ...] = ()


class LiveLoop:
    def __init__(self, debounce: float = DEBOUNCE) -> None:
        if debounce < 0:
            raise ValueError(f"debounce is {debounce}; give 0 or more seconds")
        self.debounce = debounce
        self.on = False
        self.supersedes = False  # the server supersedes live jobs itself (capability live)
        self.current: str | None = None  # the newest job sent, until it ends
        self.older: set[str] = set()  # sent before it and not ended yet: not shown when newer
        self.sent_count = 0  # jobs sent since the loop was made (tests, benchmarks)
        self._changed_at: float | None = None  # the last change not yet sent
        self._order: dict[str, int] = {}  # job id → when it was sent (1, 2, …)
        self._shown = 0  # the send order of the result shown last

    # ------------------------------------------------------------------ the host's events

    def start(self, now: float, supersedes: bool = False) -> None:
        """Live on: the first job goes out at once (the scene as it is now is the change)."""
        self.on, self.supersedes = True, supersedes
        self._changed_at = now - self.debounce

    def stop(self) -> tuple[str, ...]:
        """Live off: the jobs still running, for the host to cancel. Their ends may still
        come (:meth:`ended`); their results are not shown (:meth:`show`)."""
        self.on, self._changed_at = False, None
        running = tuple(j for j in (self.current, *sorted(self.older)) if j is not None)
        self.current, self._shown = None, max(self._order.values(), default=0)
        self.older.clear()
        return running

    def changed(self, now: float) -> None:
        """Something the live job shows changed (ignored while off)."""
        if self.on:
            self._changed_at = now

    @property
    def dirty(self) -> bool:
        return self._changed_at is not None

    def due(self, now: float) -> Send | None:
        """Whether to send a job now: live is on, a change waits, and it has been quiet for
        ``debounce`` seconds. ``Send.cancel`` lists what the host must cancel first."""
        if not self.on or self._changed_at is None or now - self._changed_at < self.debounce:
            return None
        if self.current is None or self.supersedes:
            return Send()
        return Send(cancel=(self.current,))

    def sent(self, job_id: str) -> None:
        """The host sent ``job_id``: it is the newest; the change it shows is handled."""
        if job_id in self._order:
            raise ValueError(f"live job {job_id} was sent already; give each job a new id")
        if self.current is not None:
            self.older.add(self.current)
        self.sent_count += 1
        self._order[job_id] = self.sent_count
        self.current, self._changed_at = job_id, None

    def skipped(self) -> None:
        """The host could not build the job (the user must fix something first, and was
        told): drop the change instead of retrying on every tick; the next change retries."""
        self._changed_at = None

    def ended(self, job_id: str) -> None:
        """``job_id`` ended, however (result, error, cancel, superseded)."""
        self.older.discard(job_id)
        if self.current == job_id:
            self.current = None

    def show(self, job_id: str) -> bool:
        """Whether the result of ``job_id`` should be shown: one of ours, live is on, and it
        is newer than the result shown last. Call when the result arrives; True records it
        as shown."""
        order = self._order.get(job_id, 0)
        if not self.on or order <= self._shown:
            return False
        self._shown = order
        return True

    def ours(self, job_id: str) -> bool:
        """Whether ``job_id`` is a live job this loop sent."""
        return job_id in self._order


def live_job(job: Job, key: str, offer: Offer) -> Job:
    """``job`` as a live job of ``key``: marked live where the server offers ``live`` (it
    then supersedes this key's older jobs), and without per-step previews (a live job is
    short; its result is the preview). An older server gets the plain job, which the loop
    supersedes by cancelling."""
    if not key or len(key) > LIVE_KEY_CHARS:
        raise ValueError(f"live key {key!r} must be 1 to {LIVE_KEY_CHARS} characters")
    params = replace(job.params, preview_every=0)
    if offer.has("live"):
        params = replace(params, live=True, live_key=key)
    return replace(job, params=params)
