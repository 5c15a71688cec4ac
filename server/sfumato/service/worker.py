"""The one worker: takes jobs from the fair queue and runs them on the engine, off the event loop.

The engine (and with it torch) is imported on the worker's own thread the first time it is
needed, so the server accepts connections within a second of starting while weights load.
Everything the engine reports crosses back to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..protocol import Array, Cancelled, Error, ErrorCode, Progress, Result, ServerMessage
from ..provenance import GenerationFacts, SigningIdentity
from ..registry import Registry, UnknownModel
from .config import ServerConfig
from .credentials import job_facts
from .jobs import FairQueue, JobEntry
from .store import ResultStore

if TYPE_CHECKING:
    import numpy as np

    from ..engine import Engine

log = logging.getLogger("sfumato.worker")
Notify = Callable[
    [str, ServerMessage], None
]  # (owner, message): deliver to that owner's connections


class Worker:
    def __init__(
        self,
        config: ServerConfig,
        registry: Registry,
        store: ResultStore,
        queue: FairQueue,
        notify: Notify,
        identity: SigningIdentity | None = None,
    ) -> None:
        self.config = config
        self.identity = identity  # signs every output's content credentials; None: unsigned
        self.registry = registry
        self.store = store
        self.queue = queue
        self.notify = notify
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sfumato-engine")
        self._wakeup = asyncio.Event()
        self._engine: Engine | None = None

    def kick(self) -> None:
        """A job was queued."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            entry = self.queue.pop()
            if entry is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self.queue.running = entry
            try:
                await self._run(entry)
            finally:
                self.queue.running = None

    async def preload(self, model: str) -> None:
        """Load the default model in the background so the first job does not wait for it."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._load, model, None)
            log.info("ready: %s", self._get_engine().describe())
        except Exception as exc:  # the first job that needs it reports the error to its client
            log.warning("preloading %s failed: %s", model, exc)

    def shutdown(self) -> None:
        if self.queue.running is not None:
            self.queue.running.cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- on the event loop

    async def _run(self, entry: JobEntry) -> None:
        loop = asyncio.get_running_loop()
        job_id, owner = entry.job.id, entry.owner

        def report(message: ServerMessage) -> None:  # from the engine thread
            loop.call_soon_threadsafe(self.notify, owner, message)

        entry.started = time.monotonic()
        log.info("job %s: %s on %s", job_id, entry.job.task.value, entry.model)
        try:
            result = await loop.run_in_executor(self._executor, self._execute, entry, report)
        except Exception as exc:  # every failure becomes an event for this job only
            self.notify(owner, self._failure(entry, exc))
        else:
            log.info("job %s: done in %.2f s", job_id, result.timings["total"])
            self.notify(owner, result)

    def _failure(self, entry: JobEntry, exc: Exception) -> ServerMessage:
        from ..engine import JobCancelled, ModelUnavailable

        job_id = entry.job.id
        if isinstance(exc, JobCancelled):
            log.info("job %s: cancelled", job_id)
            return Cancelled(job_id)
        if isinstance(exc, UnknownModel):
            return Error(ErrorCode.UNKNOWN_MODEL, str(exc), id=job_id, field="params.model")
        if isinstance(exc, ModelUnavailable):
            log.warning("job %s: %s", job_id, exc)
            return Error(ErrorCode.MODEL_UNAVAILABLE, str(exc), id=job_id, field="params.model")
        if isinstance(exc, ValueError):
            log.warning("job %s: rejected by the engine: %s", job_id, exc)
            return Error(ErrorCode.UNSUPPORTED, str(exc), id=job_id)
        log.exception("job %s failed", job_id, exc_info=exc)
        return Error(
            ErrorCode.JOB_FAILED,
            f"the engine failed: {type(exc).__name__}: {exc}. The server log has the details",
            id=job_id,
        )

    # ---------------------------------------------------------------- on the engine thread

    def _get_engine(self) -> Engine:
        if self._engine is None:
            try:
                from ..engine import Engine
            except ImportError as exc:
                raise RuntimeError(
                    f"the server's ML dependencies are missing ({exc.name}); install them with "
                    "pip install 'sfumato[server]'"
                ) from exc
            self._engine = Engine(
                self.registry, cache_dir=self.config.cache, device=self.config.device
            )
            log.info("engine on %s", self._engine.device)
        return self._engine

    def _load(self, model: str, on_status: Callable[[str], None] | None) -> None:
        self._get_engine().load(model, on_status=on_status)

    def _execute(self, entry: JobEntry, report: Callable[[ServerMessage], None]) -> Result:
        job_id = entry.job.id
        if entry.cancel.is_set():
            from ..engine import JobCancelled

            raise JobCancelled(job_id)
        started = time.monotonic()
        self._load(entry.model, lambda status: report(Progress(job_id, 0, 0, stage="loading")))
        loaded = time.monotonic()

        def on_step(step: int, total: int, preview: np.ndarray | None) -> None:
            image = None if preview is None else Array.from_numpy(preview)
            report(Progress(job_id, step, total, preview=image))

        job = replace(entry.job, params=replace(entry.job.params, model=entry.model))
        out = self._get_engine().run(job, on_step=on_step, is_cancelled=entry.cancel.is_set)
        ran = time.monotonic()
        timings: dict[str, Any] = {
            "queued": started - entry.submitted,
            "load": loaded - started,
            "run": ran - loaded,
        }
        result = Result(
            id=job_id,
            task=job.task,
            images=tuple(Array.from_numpy(image) for image in out.images),
            seeds=out.seeds,
            model=out.model,
            tiny=out.tiny,
            prompt=job.params.prompt,
            timings=timings,
        )
        facts: tuple[GenerationFacts, ...] = ()
        if self.identity is not None:
            facts = job_facts(job, out.model, out.seeds, self.registry, out.hashes)
        timings["total"] = time.monotonic() - entry.submitted  # store write included below
        paths = self.store.write(entry.owner, result, job.params, facts, self.identity)
        timings["store"] = time.monotonic() - ran
        timings["total"] = time.monotonic() - entry.submitted
        if job.params.files:
            result = replace(result, files=tuple(path.read_bytes() for path in paths))
        return result
