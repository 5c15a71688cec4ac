"""The one worker: takes jobs from the fair queue and runs them on the engine, off the event loop.

The engine (and with it torch) is imported on the worker's own thread the first time it is
needed, so the server accepts connections within a second of starting while weights load.
Everything the engine reports crosses back to the event loop with ``call_soon_threadsafe``.

Every job the worker takes ends with exactly one event, stored before it is sent (a result,
or the terminal record of an error or cancel), after which its journal entry is removed. The
failure path imports nothing: when the engine itself cannot import (torch broken, out of file
descriptors) each job still ends, with ``engine_unavailable``, and :attr:`Worker.problem`
tells ``welcome`` that the server is not ready. A graceful stop (:meth:`Worker.stop`) lets the
running job finish within a grace period, or interrupts it and leaves it journaled to run
again after the restart.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import (
    Array,
    Cancelled,
    Error,
    ErrorCode,
    Job,
    JobRejected,
    Progress,
    ProtocolError,
    Result,
    ServerMessage,
    SfumatoError,
    Task,
)
from ..protocol.text import loggable
from ..provenance import SigningIdentity
from ..registry import Registry
from .config import ServerConfig
from .facts import job_facts
from .fair_queue import FairQueue, JobEntry
from .journal import Journal
from .store import ResultStore, StoreError, disk_problem
from .trainjob import run_train

if TYPE_CHECKING:
    import numpy as np

    from ..engine import Engine
    from ..engine.system import TorchFacts

log = logging.getLogger("sfumato.worker")
Notify = Callable[
    [str, ServerMessage], None
]  # (owner, message): deliver to that owner's connections
STOP_TIMEOUT = 30.0  # seconds an interrupted job may take to reach its next step at a stop


class EngineUnavailable(SfumatoError):
    """The engine cannot import or start; every job fails this way until the install is fixed."""

    code = ErrorCode.ENGINE_UNAVAILABLE


def engine_problem(exc: BaseException) -> str:
    """Why the engine cannot load and what the server's admin should do, for clients and logs."""
    cause = f"{type(exc).__name__}: {str(exc)[:300]}"
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        fix = "raise the server's file descriptor limit (ulimit -n), then restart the server"
    elif isinstance(exc, ImportError):
        missing = exc.name or "a module"
        cause = f"{missing} does not import ({cause})"
        fix = "repair the server's ML install (pip install 'sfumato[server]'), then restart it"
    else:
        fix = "the server log has the traceback; repair its ML install (pip install "
        fix += "'sfumato[server]') or its --device, then restart the server"
    return f"the server cannot load its ML engine: {cause}; {fix}"


class Worker:
    def __init__(
        self,
        config: ServerConfig,
        registry: Registry,
        store: ResultStore,
        queue: FairQueue,
        notify: Notify,
        identity: SigningIdentity | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.config = config
        self.identity = identity  # signs every output's content credentials; None: unsigned
        self.registry = registry
        self.store = store
        self.queue = queue
        self.notify = notify
        self.journal = journal  # None: jobs are not kept across restarts (in-process tests)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sfumato-engine")
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._engine: Engine | None = None
        self.problem = ""  # why jobs cannot run now ("" when they can, or not tried yet)
        self.facts: TorchFacts | None = None  # the device's, once the engine has loaded
        self.stopping = False
        self._suspended: JobEntry | None = None  # interrupted by a stop: stays journaled
        self.engine_busy = threading.Event()  # the engine thread is inside a job or a load

    def kick(self) -> None:
        """A job was queued."""
        self._wakeup.set()

    def use_registry(self, registry: Registry, changed: tuple[str, ...]) -> None:
        """The registry file changed (registry_watch.py): jobs run from now on use
        ``registry``. The engine takes it on its own thread, between two jobs; it unloads
        first when an entry it may hold (``changed``: weights changed or gone) changed."""
        self.registry = registry
        engine = self._engine
        if engine is None:  # made later, from self.registry
            return

        def swap() -> None:
            if changed and engine.model is not None:
                log.info("registry: %s changed; the engine unloads", ", ".join(changed))
                engine.unload()
            engine.registry = registry

        self._executor.submit(swap)

    def interrupt(self, entry: JobEntry) -> None:
        """Stop a running job: the engine sees the flag at its next step."""
        entry.cancel.set()

    async def run(self) -> None:
        while not self.stopping:
            entry = self.queue.pop()
            if entry is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.queue.running = entry
            self._idle.clear()
            try:
                await self._run(entry)
            except Exception as exc:  # a bug on the way to the event must still end the job
                log.exception("job %s: the worker failed", entry.job.id)
                text = f"the server failed running job {entry.job.id!r} ({type(exc).__name__})"
                await self.end(
                    entry, Error(ErrorCode.INTERNAL, text + "; report it", id=entry.job.id)
                )
            finally:
                self.queue.running = None
                self._idle.set()

    async def preload(self, model: str) -> None:
        """Load the default model in the background so the first job does not wait for it."""
        loop = asyncio.get_running_loop()
        # These lines are what a plugin that started this server shows as loading progress
        # (sfumato.hostserver.parse_line reads them): keep their first words.
        log.info("preloading %s", model)
        try:
            await loop.run_in_executor(
                self._executor, self._load, model, lambda step: log.info("loading: %s", step)
            )
            log.info("ready: %s", self._get_engine().describe())
        except Exception as exc:  # the first job that needs it reports the error to its client
            typed = isinstance(exc, SfumatoError)  # an untyped one is a bug: keep its traceback
            log.warning("preloading %s failed: %s", model, exc, exc_info=not typed)

    async def stop(self, grace: float) -> list[JobEntry]:
        """Take no more jobs; let the running one finish within ``grace`` seconds, else
        interrupt it (it stays journaled and runs again after the restart). Returns the jobs
        that did not end: the interrupted one first, then the queued ones in order."""
        self.stopping = True
        self._wakeup.set()
        running = self.queue.running
        if running is not None and not await _wait(self._idle, grace):
            if not running.cancel.is_set():  # a cancel the user asked for stays a cancel
                self._suspended = running
            running.cancel.set()
            await _wait(self._idle, STOP_TIMEOUT)
        unfinished = self.queue.order()
        if running is not None and (running is self._suspended or self.queue.running is running):
            unfinished.insert(0, running)
        return unfinished

    def shutdown(self) -> None:
        if self.queue.running is not None:
            if not self.queue.running.cancel.is_set():
                self._suspended = self.queue.running
            self.queue.running.cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def end(self, entry: JobEntry, message: Error | Cancelled) -> None:
        """End a job that has no result: store how it ended, forget its journal entry, then
        tell its owner — in that order, so a ``fetch`` after a crash answers what the client
        would have heard."""
        if isinstance(message, Cancelled) and entry.cancel_reason and not message.reason:
            message = Cancelled(message.id, entry.cancel_reason)  # superseded (live.py)

        def keep() -> None:
            try:
                # a live job's end need not outlive a crash: the job itself would not
                self.store.end(entry.owner, message, durable=not entry.job.params.live)
            except StoreError as exc:  # the client still hears of it, once
                log.error("job %s: %s", entry.job.id, exc)
            if self.journal is not None:
                self.journal.remove(entry.owner, entry.job.id)

        await asyncio.to_thread(keep)
        self.notify(entry.owner, message)

    # ---------------------------------------------------------------- on the event loop

    async def _run(self, entry: JobEntry) -> None:
        loop = asyncio.get_running_loop()
        job_id, owner = entry.job.id, entry.owner

        def report(message: ServerMessage) -> None:  # from the engine thread
            loop.call_soon_threadsafe(self.notify, owner, message)

        entry.started = time.monotonic()
        if entry.cancel.is_set():  # cancelled while it was being taken from the queue
            return await self.end(entry, Cancelled(job_id))
        log.info("job %s: %s on %s", job_id, entry.job.task.value, entry.model)
        try:
            result = await loop.run_in_executor(self._executor, self._execute, entry, report)
        except Exception as exc:  # every failure becomes an event for this job only
            message = self._failure(entry, exc)
            if message is None:
                log.info(
                    "job %s: interrupted by the stop; journaled to run after the restart", job_id
                )
                return
            await self.end(entry, message)
        else:
            log.info("job %s: done in %.2f s", job_id, result.timings["total"])
            self.notify(owner, result)

    def _failure(self, entry: JobEntry, exc: Exception) -> Error | Cancelled | None:
        """The event that ends a failed job (None: interrupted by a stop, it runs again later).
        Imports nothing: the engine may be exactly what failed to import."""
        engine = sys.modules.get("sfumato.engine")
        if engine is not None and isinstance(exc, engine.JobCancelled) and entry is self._suspended:
            return None
        return failure_event(entry.job.id, exc)

    def _store_result(
        self, entry: JobEntry, job: Job, out: Output, timings: dict[str, Any], ran: float
    ) -> Result:
        """Write a finished job's images to the store (PNG + JSON + content credentials) and
        forget its journal entry: the one place a result is kept, whichever engine ran it."""
        job_id = job.id
        result = Result(
            id=job_id,
            task=job.task,
            images=tuple(Array.from_numpy(image) for image in out.images),
            seeds=out.seeds,
            model=out.model,
            tiny=out.tiny,
            prompt=job.params.prompt,
            timings=timings,
            coverage=getattr(out, "coverage", None),  # multiview (a cluster replica: none yet)
            trained=getattr(out, "trained", None),  # task train (trainjob.py)
        )
        # what made each image: signed into it with credentials on, and in result.json always
        facts = job_facts(job, out.model, out.seeds, self.registry, out.hashes)
        timings["total"] = time.monotonic() - entry.submitted  # store write included below
        paths = self.store.write(entry.owner, result, job.params, facts, self.identity)
        if self.journal is not None:  # the result is kept: the job will not run again
            self.journal.remove(entry.owner, job_id)
        timings["store"] = time.monotonic() - ran
        timings["total"] = time.monotonic() - entry.submitted
        if job.params.files:
            result = replace(result, files=tuple(path.read_bytes() for path in paths))
        return result

    # ---------------------------------------------------------------- on the engine thread

    def _get_engine(self) -> Engine:
        if self._engine is None:
            try:
                from ..engine import Engine

                engine = Engine(
                    self.registry, cache_dir=self.config.cache, device=self.config.device
                )
            except Exception as exc:  # torch broken, out of descriptors, a bad --device …
                problem = engine_problem(exc)
                if problem != self.problem:  # the traceback once, not once per job
                    log.error("%s", problem, exc_info=exc)
                self.problem = problem
                raise EngineUnavailable(problem) from exc
            self._engine, self.problem = engine, ""
            log.info("engine on %s", engine.device)
            self.facts = _device_facts(engine.device)
        return self._engine

    def _load(self, model: str, on_status: Callable[[str], None] | None) -> None:
        self.engine_busy.set()
        try:
            self._get_engine().load(model, on_status=on_status)
        finally:
            self.engine_busy.clear()

    def _execute(self, entry: JobEntry, report: Callable[[ServerMessage], None]) -> Result:
        self.engine_busy.set()
        try:
            return self._execute_job(entry, report)
        finally:
            self.engine_busy.clear()

    def _execute_job(self, entry: JobEntry, report: Callable[[ServerMessage], None]) -> Result:
        job_id = entry.job.id
        started = time.monotonic()
        if entry.job.task is Task.TRAIN:  # a LoRA, not pictures (trainjob.py)
            trained = run_train(self._get_engine(), self.config, self.registry, entry.job,
                                entry.model, report, entry.cancel.is_set)  # fmt: skip
            ran = time.monotonic()
            spent = {"queued": started - entry.submitted, "run": ran - started}
            return self._store_result(entry, entry.job, trained, spent, ran)
        self._load(entry.model, lambda status: report(Progress(job_id, 0, 0, stage="loading")))
        loaded = time.monotonic()

        stage = ["denoise"]  # multiview names each view ("view 2/8")

        def on_step(step: int, total: int, preview: np.ndarray | None) -> None:
            image = None if preview is None else Array.from_numpy(preview)
            report(Progress(job_id, step, total, stage=stage[0], preview=image))

        def on_stage(name: str) -> None:
            stage[0] = name

        job = replace(entry.job, params=replace(entry.job.params, model=entry.model))
        out = self._get_engine().run(
            job, on_step=on_step, is_cancelled=entry.cancel.is_set, on_stage=on_stage
        )
        ran = time.monotonic()
        timings: dict[str, Any] = {
            "queued": started - entry.submitted,
            "load": loaded - started,
            "run": ran - loaded,
        }
        return self._store_result(entry, job, out, timings, ran)


def failure_event(job_id: str, exc: Exception) -> Error | Cancelled:
    """The event that ends job ``job_id`` after ``exc``: the one mapping from exceptions to
    error codes, for the in-process worker and for engine replicas on a cluster alike.
    Imports nothing: the engine may be exactly what failed to import."""
    engine = sys.modules.get("sfumato.engine")
    if engine is not None and isinstance(exc, engine.JobCancelled):
        log.info("job %s: cancelled", job_id)
        return Cancelled(job_id)
    if isinstance(exc, (JobRejected, ProtocolError)):  # refused on purpose, typed
        log.warning("job %s: rejected: %s", job_id, loggable(exc.message, 500))
        return Error(exc.code, exc.message, id=job_id, field=exc.field)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        log.error("job %s failed", job_id, exc_info=exc)
        return Error(ErrorCode.JOB_FAILED, disk_problem(exc, f"job {job_id!r} failed"), id=job_id)
    if isinstance(exc, SfumatoError) and exc.code is not None:
        # A registry lookup (unknown_model), the store (store_failed), the engine's import
        # (engine_unavailable): each class carries its code (sfumato.protocol.errors).
        log.error("job %s: %s", job_id, exc)
        return Error(exc.code, str(exc), id=job_id, field=exc.field)
    # Anything else is a bug here or in a library (a ValueError from diffusers included):
    # the traceback goes to the log, the client hears job_failed, never `unsupported`.
    log.exception("job %s failed", job_id, exc_info=exc)
    return Error(
        ErrorCode.JOB_FAILED,
        f"the engine failed: {type(exc).__name__}: {exc}. The server log has the details",
        id=job_id,
    )


class Output(Protocol):
    """What an engine run hands the store: :class:`sfumato.engine.EngineOutput` in process,
    :class:`sfumato.service.replica_actor.Finished` from a cluster replica."""

    @property
    def images(self) -> Sequence[np.ndarray]: ...
    @property
    def seeds(self) -> tuple[int, ...]: ...
    @property
    def model(self) -> str: ...
    @property
    def tiny(self) -> bool: ...
    @property
    def hashes(self) -> dict[str, str]: ...


def _device_facts(device: str) -> TorchFacts | None:
    """For ``welcome.system``; a probe that fails costs the welcome its device line only."""
    try:
        from ..engine.system import probe

        return probe(device)
    except Exception:
        log.warning("could not read the device's facts for welcome.system", exc_info=True)
        return None


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True
