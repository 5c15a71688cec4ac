"""The server process's top: owns the parts (queue, store, journal, worker, budgets, the
connections) and their lifecycle — start, the worker watched and restarted, retention, the
graceful stop — and moves bytes between connections and the sans-I/O protocol.

One connection = one :class:`~.connection.Connection` with its own :class:`ServerSession` and
an outbox drained by a writer task, so a slow client never blocks the worker or another client.
What each decoded message does is :class:`~.routing.Router`'s (routing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import defaultdict

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from .. import __version__, shmem
from ..protocol import (
    Cancelled,
    Error,
    ErrorCode,
    Job,
    Progress,
    ProtocolError,
    Result,
    ServerMessage,
    ServerSession,
    State,
)
from ..provenance import load_identity
from ..registry import Registry
from . import logguard, retention
from .config import ServerConfig
from .connection import CLOSE_GRACE, FRAMES_QUEUED, Connection, gated, quiet_exceptions, watch
from .fair_queue import FairQueue
from .inputrefs import ConnectionResolver, InputCache, Probe, make_probe
from .intake import Holds, receive
from .journal import Journal, recover
from .live import lost_to_stop
from .outbox import Outbox, Pool
from .registry_watch import RegistryWatch, weights_changed
from .resources import ByteBudget, SocketGate, ensure_descriptors, return_big_buffers
from .routing import SUSPENDED, Router
from .store import ResultStore
from .worker import Worker

log = logging.getLogger("sfumato.server")
TERMINAL = (Result, Error, Cancelled)  # the one event that ends an accepted job
# A client killed mid-job closes its socket while the kernel is still tearing it down (not
# yet a zombie): the sweep at the close can find it alive and keep its segments; these look
# again, at that client's segments only
SWEEP_AGAIN_S = (0.5, 3.0)
_quiet_exceptions = quiet_exceptions  # its old name here (tests/server/test_logguard.py)


class SfumatoServer:
    """One server: ``start()`` listens and runs the worker, ``close()`` stops gracefully."""

    def __init__(self, config: ServerConfig, registry: Registry | None = None) -> None:
        config.check()
        self.config = config
        self.registry = registry or Registry.load(config.registry)
        self.default_model = config.model or self.registry.default
        self.registry.get(self.default_model)  # fail at start, not at the first job
        self.watch = RegistryWatch(self.registry, config.registry, self.default_model)
        if config.cluster.ray:  # Ray must import before anything binds (cluster extra)
            from .cluster import connect_check

            connect_check()
        self.store = ResultStore(config.results, config.png_compression)
        self.journal = Journal(config.results)  # accepted jobs, kept until they end
        self._worker_restarts = 0
        self._worker_dead = ""  # why the worker stopped for good ("" while it runs)
        self.queue = FairQueue()
        resources = config.resources
        self.budget = ByteBudget(resources.inflight_bytes)  # client messages held at once
        self.gate = SocketGate(resources.max_connections)
        self.outboxes = Pool(resources.outbox_total_bytes)  # unsent bytes of all connections
        self.holds = Holds(self.budget)  # accepted jobs' message bytes, until each job ends
        self._connections: set[Connection] = set()
        self.owners: dict[str, set[Connection]] = defaultdict(set)  # by identity, once hello
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.worker: Worker | None = None
        self.router = Router(self)
        cache = config.resources.input_cache_bytes
        self.input_cache = InputCache(cache) if cache else None  # input_ref (inputrefs.py)
        self.probe: Probe | None = None  # shm: made at start, where the platform has it

    def refresh_registry(self) -> None:
        """Read the registry file again if it changed (one stat; registry_watch.py)."""
        old = self.registry
        new = self.watch.check()
        if new is None:
            return
        self.registry = new
        if self.worker is not None:
            self.worker.use_registry(new, weights_changed(old, new))

    @property
    def tiny(self) -> bool:
        return self.registry.get(self.default_model).tiny

    @property
    def worker_dead(self) -> str:
        """Why the worker stopped for good, for hello and refused jobs ("" while it runs)."""
        return self._worker_dead

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ref_capabilities(self) -> tuple[str, ...]:
        """Announced besides the tasks: arrays by hash, by shared memory (protocol.md 2.2)."""
        return (("input_ref",) if self.input_cache is not None else ()) + (
            ("shm",) if self.probe is not None else ()
        )

    def resolver(self, owner: str) -> ConnectionResolver:
        return ConnectionResolver(self.input_cache, owner, self.probe is not None)

    async def start(self) -> None:
        resources = self.config.resources
        shmem.sweep()  # segments of clients (and servers) that died before
        self.probe = make_probe()
        logguard.install(resources.log_repeat_window)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(quiet_exceptions)
        ensure_descriptors(resources.max_connections)
        return_big_buffers()
        identity = None
        if self.config.credentials:
            identity = load_identity(
                self.config.signing_cert, self.config.signing_key, self.config.results / ".signing"
            )
            if identity.development:
                log.warning(
                    "signing content credentials with a local development identity: they "
                    "validate but are untrusted; configure signing_cert/signing_key for production"
                )
        for entry in await asyncio.to_thread(
            recover, self.journal, self.store, self.registry, self.default_model, self.config.limits
        ):  # jobs accepted before a restart that did not end: they run first, in order
            self.queue.push(entry)
        worker_class = Worker
        if self.config.cluster.ray:  # the engine runs on replicas of a Ray cluster
            from .cluster import ClusterWorker

            worker_class = ClusterWorker
        self.worker = worker_class(
            self.config, self.registry, self.store, self.queue, self._notify, identity, self.journal
        )
        self._start_worker()
        if self.config.preload:
            self._tasks.append(asyncio.create_task(self.worker.preload(self.default_model)))
        else:  # a plugin that started this server reads it as "ready once listening"
            log.info("preload off: %s loads at the first job", self.default_model)
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            origins=[
                None,
                *(Origin(o) for o in self.config.allowed_origins),
            ],  # browsers always send Origin
            compression=None,  # images do not compress, and deflate costs seconds on big passes
            # past the first: close 1009 unread; each frame is buffered whole before we see it
            max_size=(2 * self.config.limits.max_message_bytes, resources.max_frame_bytes),
            max_queue=FRAMES_QUEUED,
            ping_interval=resources.ping_interval,
            ping_timeout=resources.ping_timeout,
            server_header=f"sfumato/{__version__}",
            create_connection=gated(self.gate),
        )
        self._tasks.append(
            asyncio.create_task(watch(self._connections, resources), name="sfumato-watchdog")
        )
        self._tasks.append(asyncio.create_task(self._prune_forever(), name="sfumato-retention"))
        if self.tiny:
            log.warning(
                "serving %s, the built-in tiny model: random weights, images are noise",
                self.default_model,
            )

    def _start_worker(self) -> None:
        """Run the worker and watch it: a worker that stops is restarted (a few times), then
        the server says it is not ready and refuses jobs — it never goes unnoticed."""
        assert self.worker is not None
        task = asyncio.create_task(self.worker.run(), name="sfumato-worker")
        task.add_done_callback(self._worker_stopped)
        self._tasks.append(task)

    def _worker_stopped(self, task: asyncio.Task[None]) -> None:
        assert self.worker is not None
        if task.cancelled() or self.worker.stopping:
            return
        log.critical("the job worker stopped", exc_info=task.exception())
        self._worker_restarts += 1
        if self._worker_restarts <= 3:
            self._start_worker()
            self.worker.kick()
        else:
            self._worker_dead = (
                "the server's job worker stopped (the server log says why); restart the server"
            )

    async def close(self) -> None:
        """Stop gracefully (SIGTERM): take no new connections; let the running job finish
        within ``shutdown_grace`` seconds, else interrupt it. Unfinished jobs stay journaled
        and run again after the restart; each one's owner hears one ``progress`` with stage
        ``suspended`` — a live job, not journaled, ends ``interrupted`` instead — then every
        connection closes with 1012 (service restart)."""
        if self._server is not None:
            self._server.close(close_connections=False)  # stop listening
        if self.worker is not None:
            for entry in await self.worker.stop(self.config.shutdown_grace):
                if entry.job.params.live:  # not journaled: it ends now (live.py)
                    self.queue.remove(entry)
                    await self.worker.end(entry, lost_to_stop(entry.job.id))
                else:
                    self._notify(entry.owner, Progress(entry.job.id, 0, 0, stage=SUSPENDED))
            self.worker.shutdown()
        reason = "server restarting: unfinished jobs are kept; reconnect and fetch them"
        await asyncio.gather(
            *(self._goodbye(conn, reason) for conns in self.owners.values() for conn in conns)
        )
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.probe is not None:
            self.probe.close()

    async def _goodbye(self, conn: Connection, reason: str) -> None:
        await conn.flush()
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
            await asyncio.wait_for(conn.ws.close(1012, reason), CLOSE_GRACE)

    async def _prune_forever(self) -> None:
        """Apply the retention policy at start and every few minutes (retention.py)."""
        resources = self.config.resources
        if not (resources.retention_days or resources.retention_bytes):
            return
        while True:
            await self.prune()
            await asyncio.sleep(retention.PRUNE_INTERVAL)

    async def prune(self) -> retention.Pruned:
        resources = self.config.resources
        busy = {entry.key for entry in self.queue.order() + self.queue.busy()}
        try:
            pruned = await asyncio.to_thread(
                retention.prune,
                self.store.root,
                resources.retention_days * 86400,
                resources.retention_bytes,
                busy,
            )
        except OSError as exc:
            log.warning("retention: pruning the result store failed: %s", exc)
            return retention.Pruned(0, 0, 0, 0, 0)
        if pruned.results or pruned.records:
            log.info(
                "retention: pruned %d results (%d bytes) and %d records; %d results (%d bytes) kept",
                pruned.results, pruned.bytes, pruned.records, pruned.kept, pruned.kept_bytes,
            )  # fmt: skip
        return pruned

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        resources = self.config.resources
        conn = Connection(
            ws,
            next(self._numbers),
            ServerSession(self.config.limits, self.config.token),
            Outbox(resources.outbox_bytes, self.outboxes, self.config.limits.max_message_bytes),
        )
        writer = asyncio.create_task(conn.outbox.write_loop(ws))
        if len(self._connections) >= resources.max_connections:
            text = (
                f"the server already serves {resources.max_connections} connections "
                "(resources.max_connections); connect again later, or close idle clients"
            )
            conn.shut(
                1013, "too many connections", farewell=Error(ErrorCode.TOO_MANY_CONNECTIONS, text)
            )
            await ws.wait_closed()
            writer.cancel()
            return
        self._connections.add(conn)
        try:
            while not conn.closing:
                incoming = await receive(
                    ws, self.budget, self.config.limits, resources.inflight_wait
                )
                if incoming.refusal is not None:
                    conn.post(incoming.refusal)
                    continue
                assert incoming.data is not None
                try:
                    await self._receive(conn, incoming.data, incoming.held)
                finally:
                    incoming.data = None
                if conn.session.state is State.CLOSED:  # unauthorized: the error, then close
                    await conn.flush()
                    await ws.close(1008, "unauthorized")
                    return
        except ConnectionClosed:
            pass
        finally:
            self._connections.discard(conn)
            self.owners[conn.owner].discard(conn)
            if not self.owners[conn.owner]:
                del self.owners[conn.owner]
            writer.cancel()
            resolver = conn.session.resolver
            if isinstance(resolver, ConnectionResolver):
                resolver.close()
            if self.probe is not None:  # a client that died leaves its segments: removed
                shmem.sweep()
                if isinstance(resolver, ConnectionResolver) and resolver.pids:
                    loop = asyncio.get_running_loop()
                    for delay in SWEEP_AGAIN_S:  # its client's, once it has surely exited
                        loop.call_later(delay, shmem.sweep, resolver.pids)

    async def _receive(self, conn: Connection, data: bytes | memoryview, held: int) -> None:
        """Decode and route one message; its bytes go back to the budget now, or, for an
        accepted job (whose arrays view them), when the job ends (:meth:`_notify`)."""
        try:
            message = conn.session.receive(data)
        except ProtocolError as exc:
            self.budget.give(held)
            conn.post(Error(exc.code, exc.message, id=exc.id, field=exc.field))
            return
        finally:
            if conn.session.resolver is not None:  # shared-memory segments read: unlinked
                conn.session.resolver.finish()
        try:
            await self.router.dispatch(conn, message)
        finally:
            entry = self.queue.find(conn.owner, message.id) if isinstance(message, Job) else None
            if entry is not None and entry.job is message and entry.key not in self.holds:
                self.holds.keep(entry.key, message, held)
            else:
                self.budget.give(held)

    def _notify(self, owner: str, message: ServerMessage) -> None:
        if isinstance(message, TERMINAL) and message.id is not None:
            self.holds.free((owner, message.id))
        for conn in self.owners.get(owner, ()):
            conn.post(message)
