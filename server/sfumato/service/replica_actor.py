"""The body of one engine replica on a Ray cluster, and what crosses from it to the front door.

``sfumato.service.cluster`` makes :class:`ReplicaActor` a Ray actor (``ray.remote`` with its
resources: ``num_gpus=1``, or ``num_cpus`` for a CPU replica). This module imports neither Ray
nor torch: the front door imports it to name the class and the records, and only the actor's
own process imports the engine (:mod:`sfumato.engine.replica`), in ``__init__``.

A job is one call of :meth:`ReplicaActor.run`, a *streaming generator*: it yields the
job's ``progress`` messages as the engine reports them (in batches: what came since the last
yield) and ends with one record — a
:class:`Finished` (its images travel through Ray's object store as numpy arrays), or the
``error`` / ``cancelled`` message that ends the job, mapped from the engine's exception by
the same function the in-process worker uses (``worker.failure_event``). Exceptions never
cross: an engine exception class would make the front door import torch to unpickle it.

``cancel`` and ``info`` run in the actor's ``control`` concurrency group (their own threads),
so a cancel reaches a replica that is busy running a job at once; the engine sees it at its
next step. Cancels name the attempt's *ticket*, not the job id: a cancel that arrives after
its job ended can never stop a later job that reuses the id.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol import Array, Cancelled, Coverage, Error, Job, Progress
from ..registry import Registry
from .registry_watch import weights_changed
from .worker import EngineUnavailable, engine_problem, failure_event

if TYPE_CHECKING:
    import numpy as np

    from ..engine.replica import Replica

log = logging.getLogger("sfumato.replica")
CONTROL = "control"  # the concurrency group of cancel and info
HISTORY = 1000  # job ids a replica remembers having finished (for `info`)


@dataclass(frozen=True)
class Finished:
    """A job's images and what reproduces them (worker.Output), as the replica produced them."""

    images: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    model: str
    tiny: bool
    hashes: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "load", "run"
    replica: str = ""
    coverage: Coverage | None = None  # task multiview


@dataclass(frozen=True)
class ReplicaInfo:
    """What a replica says about itself: where it runs, what it loaded, what it finished."""

    name: str
    pid: int
    host: str
    device: str
    loaded: str | None
    running: str | None  # the id of the job it runs now
    loads: tuple[str, ...]  # base models loaded, in order
    finished: tuple[str, ...]  # job ids finished here (the last HISTORY), oldest first
    problem: str  # why this replica cannot run jobs ("" when it can)
    niceness: int = 0  # its process's (Ray starts workers at 15 unless told otherwise)


_END = object()  # the engine thread is done

# What ``run`` gets of the front door's registry: None while it is the one the replica was
# made with, else (its generation, [a Ray ObjectRef of it]) — in a list, so Ray hands the
# reference over instead of fetching the value for every job; the replica fetches it once.
SentRegistry = tuple[int, list[Any]] | None
Item = Progress | Finished | Error | Cancelled  # what a run streams, in batches


class ReplicaActor:
    """One engine on one device; a plain class until the cluster module wraps it."""

    def __init__(
        self, registry: Registry, cache_dir: str, device: str | None, threads: int, name: str
    ) -> None:
        self.name = name
        self.problem = ""
        self._replica: Replica | None = None
        self._cancelled: deque[str] = deque(maxlen=HISTORY)  # tickets asked to stop
        self._lock = threading.Lock()
        self._finished: deque[str] = deque(maxlen=HISTORY)
        self._running: str | None = None
        self._generation = 0  # of the registry in use: 0, the one this replica was made with
        try:
            from ..engine.replica import Replica

            self._replica = Replica(registry, Path(cache_dir), device, threads)
        except Exception as exc:  # torch broken on this node: every job says so, typed
            self.problem = engine_problem(exc)
            log.error("replica %s: %s", name, self.problem, exc_info=exc)

    # ------------------------------------------------------------ default group: one at a time

    def load(self, model: str) -> str:
        """Load ``model`` now (the front door's preload); returns the engine's description."""
        replica = self._engine()
        replica.load(model)
        return replica.describe()

    def _take_registry(self, replica: Replica, generation: int, holder: list[Any]) -> None:
        """Between two jobs (``run`` is this actor's one-at-a-time group): the registry the
        front door read again (``sfumato approve``, an added entry); a replica restarted by
        Ray starts from the one it was made with and takes the newest at its first job."""
        import ray

        (ref,) = holder
        new: Registry = ray.get(ref)
        changed = weights_changed(replica.engine.registry, new)
        replica.use_registry(new, changed)
        self._generation = generation
        log.info(
            "replica %s: registry %d taken (%d entries%s)", self.name, generation,
            len(new.entries), f"; {', '.join(changed)} changed, unloaded" if changed else "",
        )  # fmt: skip

    def run(
        self, job: Job, ticket: str, registry: SentRegistry = None
    ) -> Iterator[tuple[Item, ...]]:
        """Run ``job`` (its ``params.model`` resolved), yielding its progress, then its end;
        first taking the front door's newer ``registry``, if it sent one (``SentRegistry``).

        Each yield is a batch: what the engine reported since the last one. A yield costs an
        object in Ray's store and a message to the front door, so steps that come faster than
        that travel together instead of queueing one by one (a slow step is a batch of one)."""
        try:
            replica = self._engine()
        except EngineUnavailable as exc:
            yield (failure_event(job.id, exc),)
            return
        if registry is not None and registry[0] != self._generation:
            self._take_registry(replica, *registry)
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()

        def is_cancelled() -> bool:
            return stop.is_set() or self._is_cancelled(ticket)

        stage = ["denoise"]  # multiview names each view ("view 2/8")

        def on_step(step: int, total: int, preview: np.ndarray | None) -> None:
            image = None if preview is None else Array.from_numpy(preview)
            items.put(Progress(job.id, step, total, stage=stage[0], preview=image))

        def on_stage(name: str) -> None:
            stage[0] = name

        def on_status(status: str) -> None:
            items.put(Progress(job.id, 0, 0, stage="loading"))

        def work() -> None:
            started = time.monotonic()
            try:
                out = replica.execute(job, on_step, is_cancelled, on_status, on_stage)
                timings = {**out.timings, "replica": time.monotonic() - started}
                finished = Finished(
                    out.images, out.seeds, out.model, out.tiny, dict(out.hashes), timings,
                    self.name, out.coverage,
                )  # fmt: skip
                items.put(finished)
            except Exception as exc:  # every failure becomes this job's end, as data
                items.put(failure_event(job.id, exc))
            finally:
                items.put(_END)

        thread = threading.Thread(target=work, name=f"sfumato-job-{job.id}", daemon=True)
        self._running = job.id
        thread.start()
        try:
            ended = False
            while not ended:
                batch = [items.get()]
                while not items.empty():
                    batch.append(items.get())
                ended = batch[-1] is _END  # always the last thing the engine thread puts
                batch = [item for item in batch if item is not _END]
                if any(isinstance(item, Finished) for item in batch):
                    self._finished.append(job.id)
                if ended:  # the engine thread is done: the job's end goes out with nothing
                    self._running = None  # running here (info says so from now on)
                if batch:
                    yield tuple(batch)
        finally:  # the consumer went away (GeneratorExit): stop the engine at its next step
            stop.set()
            thread.join()
            self._running = None

    # ------------------------------------------------------------ control group: concurrent

    def cancel(self, ticket: str) -> None:
        """Stop the attempt ``ticket`` at its next step (or before it starts)."""
        with self._lock:
            self._cancelled.append(ticket)

    def info(self) -> ReplicaInfo:
        replica = self._replica
        return ReplicaInfo(
            name=self.name,
            pid=os.getpid(),
            host=socket.gethostname(),
            device=replica.device if replica is not None else "",
            loaded=replica.loaded if replica is not None else None,
            running=self._running,
            loads=tuple(replica.loads) if replica is not None else (),
            finished=tuple(self._finished),
            problem=self.problem,
            niceness=os.nice(0),
        )

    # ------------------------------------------------------------ helpers

    def _is_cancelled(self, ticket: str) -> bool:
        with self._lock:
            return ticket in self._cancelled

    def _engine(self) -> Replica:
        if self._replica is None:
            raise EngineUnavailable(f"replica {self.name}: {self.problem}")
        return self._replica
