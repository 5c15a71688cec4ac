"""The front door's side of ``serve --ray``: jobs from the fair queue run on engine replicas,
Ray actors on a cluster, instead of on the in-process engine thread.

:class:`ClusterWorker` has the in-process :class:`~.worker.Worker`'s interface (the server and
the router cannot tell them apart) and keeps what the front door owns: the fair queue picks
which job runs next, :func:`~.placement.choose` where (model affinity), the store writes every
result (PNG + JSON + content credentials, exactly as in process) and the journal keeps every
job until it ends. Ray does what a cluster manager does: places replicas (``num_gpus=1`` each,
or ``num_cpus`` for CPU replicas), restarts one that dies (``max_restarts``) and carries the
bytes (jobs in, images back through its object store).

A job is one streaming-generator call on its replica (replica_actor.py): progress and previews
are forwarded as they come; a cancel is forwarded at once to the replica's ``control`` group.
A replica that dies mid-job costs that job one more run, on another replica while another is
alive; a second death ends it with ``replica_lost``. The result is stored and delivered only
from the one attempt that finished, so nothing is delivered twice.

Ray is imported here only, and this module only when the config asks for a cluster: plain
``sfumato serve`` does not need Ray installed. Nothing here imports torch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..protocol import Cancelled, Error, ErrorCode, Progress
from ..provenance import SigningIdentity
from ..registry import Registry
from .config import ServerConfig
from .daemon import in_daemon
from .fair_queue import FairQueue, JobEntry
from .journal import Journal
from .placement import Slot, all_down, choose
from .replica_actor import CONTROL, Finished, ReplicaActor, ReplicaInfo, SentRegistry
from .store import ResultStore
from .worker import STOP_TIMEOUT, Notify, Worker, _wait

log = logging.getLogger("sfumato.cluster")
# Passed to every replica, so that a node started elsewhere behaves as this front door asks.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "HF_ENDPOINT")
REVIVE_TIMEOUT = 300.0  # seconds a restarting replica may take to answer again
REVIVE_POLL = 0.5  # seconds between asking a restarting replica whether it is back


@dataclass
class Attempt:
    """One run of a job on one replica: its cancel ticket and the replica it went to."""

    entry: JobEntry
    slot: Slot
    ticket: str


NICENESS = "RAY_worker_niceness"  # Ray reads it when a node starts (its raylet)


class ClusterWorker(Worker):
    """Runs the queue's jobs on Ray replicas, several at once (one per replica)."""

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
        super().__init__(config, registry, store, queue, notify, identity, journal)
        self.settings = config.cluster
        self.slots: list[Slot] = []
        self._actors: list[Any] = []  # ray.actor.ActorHandle, by slot index
        self._attempts: dict[tuple[str, str], Attempt] = {}  # running now, by job key
        self._retries: list[tuple[JobEntry, int]] = []  # (job, the replica it died on)
        self._retried: set[tuple[str, str]] = set()  # jobs that already ran again once
        self._suspended_jobs: set[tuple[str, str]] = set()  # interrupted by a stop
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()  # the replicas exist (or could not be made: .problem)
        self._started_ray = False
        self._generation = 0  # registry files read again since start (use_registry)
        self._registry_ref: Any = None  # ray.ObjectRef of self.registry, put once per change

    # ---------------------------------------------------------------- the Worker interface

    async def run(self) -> None:
        if not self._ready.is_set():
            await self._connect()
        while not self.stopping:
            self._place()
            self._wakeup.clear()
            await self._wakeup.wait()

    def use_registry(self, registry: Registry, changed: tuple[str, ...]) -> None:
        """The registry file changed: admission uses it now, and every replica takes it
        before its next job (``ReplicaActor.run``'s ``registry``), unloading only what
        ``changed`` — also a replica Ray restarts, which starts from its first registry."""
        self.registry = registry
        self._generation += 1
        self._registry_ref = None  # put into Ray's object store at the next job

    def _sent_registry(self) -> SentRegistry:
        if not self._generation:
            return None  # the replicas were made with this one
        if self._registry_ref is None:
            import ray

            self._registry_ref = ray.put(self.registry)
        return (self._generation, [self._registry_ref])

    async def preload(self, model: str) -> None:
        """Load the default model on every replica, in the background."""
        await self._ready.wait()

        async def one(slot: Slot) -> None:
            try:
                line = await self._actors[slot.index].load.remote(model)
            except Exception as exc:  # the first job that needs it reports the error
                log.warning("replica %s: preloading %s failed: %s", slot.name, model, exc)
                return
            if slot.running is None:
                slot.loaded = model
            log.info("replica %s ready: %s", slot.name, line)

        await asyncio.gather(*(one(slot) for slot in self.slots if slot.alive))

    def interrupt(self, entry: JobEntry) -> None:
        """Stop a running job: its replica hears at once and stops at the engine's next step."""
        entry.cancel.set()
        attempt = self._attempts.get(entry.key)
        if attempt is not None:
            self._spawn(self._send_cancel(attempt))

    async def stop(self, grace: float) -> list[JobEntry]:
        """Take no more jobs; running ones get ``grace`` seconds, then are interrupted and stay
        journaled (they run again after the restart). Returns the jobs that did not end."""
        self.stopping = True
        self._wakeup.set()
        running = list(self.queue.placed.values())
        if running and not await _wait(self._idle, grace):
            for entry in list(self.queue.placed.values()):
                if not entry.cancel.is_set():  # a cancel the user asked for stays a cancel
                    self._suspended_jobs.add(entry.key)
                self.interrupt(entry)
            await _wait(self._idle, STOP_TIMEOUT)
        unfinished = [e for e in running if e.key in self._suspended_jobs]
        unfinished += [e for e in self.queue.placed.values() if e not in unfinished]
        return unfinished + self.queue.order()

    def shutdown(self) -> None:
        for entry in list(self.queue.placed.values()):
            if not entry.cancel.is_set():
                self._suspended_jobs.add(entry.key)
            self.interrupt(entry)
        for task in self._tasks:
            task.cancel()
        super().shutdown()
        if self._actors:
            import ray

            for actor in self._actors:  # they would die with this driver; say so at once
                try:
                    ray.kill(actor)
                except Exception as exc:  # already gone
                    log.debug("killing a replica: %s", exc)
            if self._started_ray:
                ray.shutdown()

    # ---------------------------------------------------------------- connecting

    async def _connect(self) -> None:
        try:
            timeout = self.settings.connect_timeout
            await asyncio.wait_for(in_daemon(self._start_replicas, "sfumato-ray-connect"), timeout)
            infos = await asyncio.gather(
                *(actor.info.options(concurrency_group=CONTROL).remote() for actor in self._actors)
            )
        except asyncio.TimeoutError:
            self.problem = (
                f"the server could not reach the Ray cluster at {self.settings.address!r} "
                f"within {self.settings.connect_timeout} s (cluster.connect_timeout); check "
                "cluster.address (--ray) and that the cluster runs there (`ray status` on "
                "that machine), then restart the server"
            )
            log.error("%s", self.problem)
            self.slots = []
        except Exception as exc:
            self.problem = (
                f"the server cannot start its engine replicas on the Ray cluster "
                f"({type(exc).__name__}: {str(exc)[:300]}); check cluster.address (--ray) and "
                "that the cluster runs (`ray status`), then restart the server"
            )
            log.error("%s", self.problem, exc_info=exc)
            self.slots = []  # all down: every job ends with engine_unavailable and why
        else:
            problems = [info.problem for info in infos if info.problem]
            self.problem = problems[0] if len(problems) == len(infos) else ""
            for slot, info in zip(self.slots, infos, strict=True):
                if info.problem:  # it cannot run jobs: none go there
                    slot.alive, slot.down = False, True
                log.info(
                    "replica %s on %s (pid %d, %s)%s", info.name, info.host, info.pid,
                    info.device, f": {info.problem}" if info.problem else "",
                )  # fmt: skip
                if info.niceness > 0:
                    log.warning(
                        "replica %s runs at niceness %d (Ray's default for its workers): any "
                        "other busy process on %s gets the CPU first; start that node's Ray "
                        "with %s=0 (docs/scaling.md)", info.name, info.niceness, info.host,
                        NICENESS,
                    )  # fmt: skip
        self._ready.set()
        self._wakeup.set()

    def _start_replicas(self) -> None:
        """Connect to (or start) the cluster and create one named actor per replica."""
        import ray

        settings = self.settings
        if not ray.is_initialized():
            if settings.address:
                ray.init(address=settings.address, namespace=settings.namespace)
            else:
                # Ray runs its workers at niceness 15 unless told: the replicas are this
                # server's work, so they get the CPU like any other process (docs/scaling.md)
                os.environ.setdefault(NICENESS, "0")
                ray.init(namespace=settings.namespace, include_dashboard=False)
                self._started_ray = True
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = gpus > 0 and (self.config.device or "auto") != "cpu"
        count = settings.replicas or (gpus if use_gpu else 1)
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options: dict[str, Any] = {
            "namespace": settings.namespace,
            "max_restarts": settings.max_restarts,
            "max_task_retries": 0,  # a job runs again by our rule (once), never by Ray's
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": 1 if use_gpu else 0,
            "lifetime": None,  # replicas end with this front door
        }
        if env:
            options["runtime_env"] = {"env_vars": env}
        remote = ray.remote(concurrency_groups={CONTROL: 2})(ReplicaActor)  # type: ignore[call-overload]
        prefix = f"{socket.gethostname()}-{os.getpid()}"
        device = "cuda" if use_gpu else "cpu"
        threads = 0 if use_gpu else settings.cpus_per_replica
        for n in range(count):
            name = f"{prefix}-replica-{n}"
            actor = remote.options(name=name, **options).remote(
                self.registry, str(self.config.cache), device, threads, name
            )
            self._actors.append(actor)
            self.slots.append(Slot(n, name))
        log.info(
            "%d %s replica%s on the Ray cluster (%s)", count, "GPU" if use_gpu else "CPU",
            "" if count == 1 else "s", settings.address or "started here",
        )  # fmt: skip

    # ---------------------------------------------------------------- placing jobs

    def _place(self) -> None:
        """Start every job that can start now: retries first, then the queue in fair order."""
        if not self._ready.is_set():
            return
        if all_down(self.slots):
            self._fail_everything()
            return
        for entry, avoid in list(self._retries):
            if entry.cancel.is_set():
                self._retries.remove((entry, avoid))
                self._spawn(self._end_placed(entry, self._cancelled_or_none(entry)))
                continue
            slot = choose(self.slots, entry.model, avoid)
            if slot is not None:
                self._retries.remove((entry, avoid))
                self._start(entry, slot)
        while any(slot.free for slot in self.slots):
            queued = self.queue.pop()
            if queued is None:
                return
            slot = choose(self.slots, queued.model)
            assert slot is not None  # a free replica exists and nothing is avoided
            self.queue.placed[queued.key] = queued
            self._start(queued, slot)

    def _fail_everything(self) -> None:
        """No replica is alive: every waiting job ends now rather than wait forever."""
        text = self.problem or (
            "every engine replica on the Ray cluster is down (Ray's restarts are spent); the "
            "server log says why; restart the server"
        )
        for entry, _ in self._retries:
            self._spawn(self._end_placed(entry, self._lost(entry, "no replica is left alive")))
        self._retries.clear()
        while (queued := self.queue.pop()) is not None:
            self.queue.placed[queued.key] = queued
            error = Error(ErrorCode.ENGINE_UNAVAILABLE, text, id=queued.job.id)
            self._spawn(self._end_placed(queued, error))

    def _start(self, entry: JobEntry, slot: Slot) -> None:
        slot.running = entry.key
        attempt = Attempt(entry, slot, uuid.uuid4().hex)
        self._attempts[entry.key] = attempt
        self._idle.clear()
        self._spawn(self._run_attempt(attempt))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- running one attempt

    async def _run_attempt(self, attempt: Attempt) -> None:
        entry, slot = attempt.entry, attempt.slot
        died = False
        try:
            died = await self._stream(attempt)
        except Exception as exc:  # a bug on the way to the event must still end the job
            log.exception("job %s: the cluster dispatcher failed", entry.job.id)
            text = f"the server failed running job {entry.job.id!r} ({type(exc).__name__})"
            await self._end_placed(
                entry, Error(ErrorCode.INTERNAL, text + "; report it", id=entry.job.id)
            )
        finally:
            del self._attempts[entry.key]
            slot.running = None
            if died:
                slot.alive = False
                self._spawn(self._revive(slot))
            if not self._attempts:
                self._idle.set()
            self._wakeup.set()

    async def _stream(self, attempt: Attempt) -> bool:
        """Run the attempt to its end; True when its replica died under it."""
        import ray

        entry, slot = attempt.entry, attempt.slot
        job_id, owner = entry.job.id, entry.owner
        entry.started = time.monotonic()
        if entry.cancel.is_set():  # cancelled while it was being placed
            await self._end_placed(entry, self._cancelled_or_none(entry))
            return False
        log.info(
            "job %s: %s on %s (replica %s)", job_id, entry.job.task.value, entry.model, slot.name
        )
        job = replace(entry.job, params=replace(entry.job.params, model=entry.model))
        out: Finished | None = None
        end: Error | Cancelled | None = None
        try:
            sent = self._sent_registry()
            async for ref in self._actors[slot.index].run.remote(job, attempt.ticket, sent):
                for item in await ref:  # a batch: what the replica reported since the last
                    if isinstance(item, Progress):
                        self.notify(owner, item)
                    elif isinstance(item, Finished):
                        out = item
                    else:
                        end = item
                if out is not None or end is not None:
                    break
        except ray.exceptions.RayActorError as exc:  # the replica's process died
            if out is None and end is None:
                await self._replica_died(entry, slot, exc)
                return True
        if out is not None:
            slot.loaded = out.model
            await self._deliver(entry, job, out)
        elif isinstance(end, Cancelled):
            await self._end_placed(entry, self._cancelled_or_none(entry))
        elif end is not None:
            await self._end_placed(entry, end)
        return False

    async def _deliver(self, entry: JobEntry, job: Any, out: Finished) -> None:
        ran = time.monotonic()
        assert entry.started is not None
        timings: dict[str, Any] = {
            "queued": entry.started - entry.submitted,
            "load": out.timings.get("load", 0.0),
            "run": out.timings.get("run", 0.0),
            "replica": out.timings.get("replica", 0.0),
        }
        try:
            result = await asyncio.to_thread(self._store_result, entry, job, out, timings, ran)
        except Exception as exc:  # the store failed: this job's error, nothing else
            message = self._failure(entry, exc) or Error(
                ErrorCode.INTERNAL, f"job {job.id!r}: {exc}", id=job.id
            )
            await self._end_placed(entry, message)
            return
        log.info("job %s: done in %.2f s on %s", job.id, timings["total"], out.replica)
        self._suspended_jobs.discard(entry.key)  # it finished before the stop reached it
        self.queue.placed.pop(entry.key, None)
        self.notify(entry.owner, result)

    async def _replica_died(self, entry: JobEntry, slot: Slot, exc: Exception) -> None:
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        log.error("job %s: replica %s died while running it (%s)", entry.job.id, slot.name, cause)
        if entry.key in self._suspended_jobs:
            self.queue.placed.pop(entry.key, None)
            return
        if entry.cancel.is_set():
            await self._end_placed(entry, Cancelled(entry.job.id))
        elif entry.key in self._retried:
            await self._end_placed(entry, self._lost(entry, f"replica {slot.name} died too"))
        else:
            self._retried.add(entry.key)
            self._retries.append((entry, slot.index))
            log.info("job %s: runs again on another replica", entry.job.id)

    async def _revive(self, slot: Slot) -> None:
        """Wait for Ray to restart a dead replica; it takes jobs again once it answers. Ray
        answers "unavailable" while it restarts one and "died" once its restarts are spent."""
        import ray

        actor = self._actors[slot.index]
        deadline = time.monotonic() + REVIVE_TIMEOUT
        while True:
            try:
                info: ReplicaInfo = await actor.info.options(concurrency_group=CONTROL).remote()
                break
            except ray.exceptions.ActorUnavailableError:  # restarting: ask again soon
                if time.monotonic() > deadline:
                    return self._down(slot, f"it did not restart within {REVIVE_TIMEOUT:g} s")
                await asyncio.sleep(REVIVE_POLL)
            except Exception as exc:  # died for good (or Ray itself is gone)
                return self._down(slot, str(exc).splitlines()[0][:300] if str(exc) else repr(exc))
        slot.alive, slot.loaded = True, None
        log.info("replica %s restarted (pid %d on %s)", slot.name, info.pid, info.host)
        self._wakeup.set()

    def _down(self, slot: Slot, why: str) -> None:
        log.error("replica %s stays down: %s", slot.name, why)
        slot.down = True
        self._wakeup.set()

    async def _send_cancel(self, attempt: Attempt) -> None:
        try:
            actor = self._actors[attempt.slot.index]
            await actor.cancel.options(concurrency_group=CONTROL).remote(attempt.ticket)
        except Exception as exc:  # the replica died: its job ends through _replica_died
            log.info("job %s: the cancel did not reach its replica: %s", attempt.entry.job.id, exc)

    # ---------------------------------------------------------------- ending

    def _cancelled_or_none(self, entry: JobEntry) -> Cancelled | None:
        """A cancel: the user's (the job ends) or a stop's (None: it stays journaled)."""
        return None if entry.key in self._suspended_jobs else Cancelled(entry.job.id)

    def _lost(self, entry: JobEntry, what: str) -> Error:
        return Error(
            ErrorCode.REPLICA_LOST,
            f"job {entry.job.id!r} did not finish: the engine replica running it died ({what}; "
            "it had already run again once or could not); submit it again, and if this "
            "repeats the job may crash the engine (the server's admin: see `ray logs`)",
            id=entry.job.id,
        )

    async def _end_placed(self, entry: JobEntry, message: Error | Cancelled | None) -> None:
        """End a job that was taken from the queue (None: a stop interrupted it; it stays
        journaled and runs after the restart). It stays placed until its end is stored, so
        its id is not free for a new job before a ``fetch`` can answer how it ended."""
        try:
            if message is not None:
                await self.end(entry, message)
        finally:
            self.queue.placed.pop(entry.key, None)


def connect_check() -> None:
    """Fail fast, with the fix, when Ray is not installed (``serve --ray`` at start)."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        from .config import ConfigError

        raise ConfigError(
            f"--ray needs Ray, which does not import here ({exc}); install the cluster extra: "
            "pip install 'sfumato[server,cluster]'"
        ) from None
