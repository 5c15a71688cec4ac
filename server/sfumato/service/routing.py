"""What the server does with each client message once the session has decoded it: hello is
welcomed, a job is admitted and journaled before it is accepted (a live job is not journaled:
live.py), a cancel ends a queued job or stops the running one, a fetch answers from the queue or
the result store.

:class:`Router` holds no connection state of its own beyond the jobs being journaled; it works
on the server's parts (queue, store, journal, worker), which the server (server.py) owns.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from .. import __version__
from ..protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Cancel,
    Cancelled,
    ClientMessage,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    ListModels,
    Models,
    Progress,
    ServerMessage,
    Welcome,
)
from ..protocol.text import loggable
from .admission import Refusal, admit
from .connection import Connection
from .fair_queue import JobEntry
from .health import system_info
from .live import lost_to_stop, supersede
from .store import StoreError, owner_key

if TYPE_CHECKING:
    from .server import SfumatoServer

log = logging.getLogger("sfumato.server")
CAPABILITIES = (
    "generate", "refine", "inpaint", "variants", "cancel", "fetch",
    "control", "lora", "tile", "preview", "outpaint", "upscale", "multiview", "train", "live",
    "reference", "regions",
)  # fmt: skip


def capabilities(cluster: bool) -> tuple[str, ...]:
    """What welcome announces: training needs the in-process worker (service/trainjob.py)."""
    return tuple(c for c in CAPABILITIES if not (cluster and c == "train"))


SUSPENDED = "suspended"  # progress stage: the server stops; the job runs after the restart


class Router:
    """Routes one connection's messages, one at a time, to the server's parts."""

    def __init__(self, server: SfumatoServer) -> None:
        self.server = server
        self._keeping: set[tuple[str, str]] = set()  # jobs being journaled, not yet accepted
        self._background: set[asyncio.Task[None]] = set()  # fetches under way

    async def dispatch(self, conn: Connection, message: ClientMessage) -> None:
        """One message at a time per connection: a job is journaled before the next message
        of its connection (a cancel of it, say) is read."""
        server = self.server
        if isinstance(message, (Hello, Job, ListModels)):
            server.refresh_registry()  # `sfumato approve` takes effect now (registry_watch.py)
        if isinstance(message, Hello):
            self._hello(conn, message)
        elif isinstance(message, Job):
            await self._submit(conn, message)
        elif isinstance(message, Cancel):
            await self._cancel(conn, message)
        elif isinstance(message, Fetch) and not self._fetch_pending(conn, message):
            task = asyncio.create_task(self._fetch(conn, message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message, ListModels):
            conn.post(Models(server.registry.infos(), server.default_model))

    def _hello(self, conn: Connection, hello: Hello) -> None:
        server = self.server
        client_id = hello.client_id or uuid.uuid4().hex
        conn.owner = owner_key(server.config.token, client_id)
        server.owners[conn.owner].add(conn)
        conn.session.resolver = server.resolver(conn.owner)  # arrays by reference (2.2)
        # client text, escaped: a newline or escape sequence in it never forges a log line
        log.info(
            "connection %d: %s %s", conn.number, loggable(hello.client), loggable(hello.version)
        )
        status = server.worker_dead or (server.worker.problem if server.worker is not None else "")
        notice = ""
        if server.tiny:
            notice = (
                f"Serving {server.default_model}, the built-in tiny model: random weights, so "
                "images are noise. Configure a real model in the registry (see docs/quickstart.md)."
            )
        models = server.registry.infos()  # each entry's weights looked up once per hello
        conn.post(
            Welcome(
                server=__version__,
                protocol=PROTOCOL_VERSION,
                capabilities=capabilities(server.config.cluster.ray) + server.ref_capabilities,
                models=models,
                default_model=server.default_model,
                limits=server.config.limits,
                client_id=client_id,
                notice=notice,
                ready=not status,
                status=status,
                system=system_info(
                    server.registry,
                    server.default_model,
                    server.config,
                    server.worker.facts if server.worker is not None else None,
                    models,
                ),
                input_cache=0 if server.input_cache is None else server.input_cache.capacity,
                shm=None if server.probe is None else server.probe.wire,
            )
        )

    async def _submit(self, conn: Connection, job: Job) -> None:
        server = self.server

        def refuse(code: ErrorCode, text: str, field: str | None = None) -> None:
            conn.post(Error(code, text, id=job.id, field=field))

        try:
            sendable = server.config.limits.max_message_bytes  # the result must fit one message
            model = admit(job, server.registry, server.default_model, sendable).name
        except Refusal as refusal:
            return refuse(refusal.code, refusal.message, refusal.field)
        if job.task.value == "train" and server.config.cluster.ray:
            return refuse(
                ErrorCode.UNSUPPORTED,
                "task: train runs on a single-process server, and this one runs its jobs on a "
                "Ray cluster (serve --ray); train with `sfumato train-lora`, or on a server "
                "started without --ray (with --registry FILE --datasets DIR)",
                "task",
            )
        if job.params.live and server.worker is not None:  # before the count: bursts fit
            await supersede(server.queue, server.worker, conn.owner, job)
        limit = server.config.limits.max_queued_jobs
        if server.queue.load(conn.owner) >= limit:  # per identity, over all its connections
            return refuse(
                ErrorCode.QUEUE_FULL,
                f"this client (token and client_id) already has {limit} jobs queued or running "
                "over its connections (max_queued_jobs); wait for one to finish or cancel one",
            )
        key = (conn.owner, job.id)
        if key in self._keeping or server.queue.find(*key) is not None or server.store.exists(*key):
            return refuse(
                ErrorCode.DUPLICATE_ID, f"job id {job.id!r} is already used; pick a new id", "id"
            )
        if server.worker_dead:
            return refuse(ErrorCode.ENGINE_UNAVAILABLE, server.worker_dead)
        self._keeping.add(key)
        try:  # accepted means kept: journaled durably before the client hears `accepted`
            if job.params.live:  # never journaled: stale after a restart (live.py)
                server.store.forget_end(conn.owner, job.id)  # an unlink: no fsync
            else:
                await asyncio.to_thread(self._keep, conn.owner, job, model)
        except StoreError as exc:
            log.error("job %s refused: %s", job.id, exc)
            return refuse(ErrorCode.STORE_FAILED, str(exc))
        finally:
            self._keeping.discard(key)
        entry = JobEntry(job, conn.owner, conn.number, model)
        assert server.worker is not None
        if job.params.live and server.worker.stopping:  # nothing keeps it past the stop
            conn.post(Accepted(job.id, 0))
            return await server.worker.end(entry, lost_to_stop(job.id))
        position = server.queue.push(entry)
        conn.post(Accepted(job.id, position))
        if server.worker.stopping:  # accepted during a stop: it runs after the restart
            conn.post(Progress(job.id, 0, 0, stage=SUSPENDED))
        server.worker.kick()

    def _keep(self, owner: str, job: Job, model: str) -> None:
        server = self.server
        server.store.forget_end(owner, job.id)  # an id used again after an error or cancel
        server.journal.write(owner, job, model)

    async def _cancel(self, conn: Connection, cancel: Cancel) -> None:
        server = self.server
        entry = server.queue.find(conn.owner, cancel.id)
        if entry is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no queued or running job {cancel.id!r}; it may have finished (fetch it)",
                    id=cancel.id,
                    field="id",
                )
            )
        elif server.queue.remove(entry):
            assert server.worker is not None
            await server.worker.end(entry, Cancelled(cancel.id))  # recorded, then sent
        else:  # running: the engine stops at its next step (on a replica: told at once)
            assert server.worker is not None
            server.worker.interrupt(entry)

    def _fetch_pending(self, conn: Connection, fetch: Fetch) -> bool:
        """A queued or running job answers ``accepted`` at once, before the event loop can
        deliver any later event of it: the client sees ``accepted`` before the ``progress``
        and the end that follow (protocol.md 4.4)."""
        server = self.server
        pending = server.queue.find(conn.owner, fetch.id)
        if pending is None:
            return False
        order = server.queue.order()
        running = len(server.queue.busy())
        position = order.index(pending) + running if pending in order else 0
        conn.post(Accepted(fetch.id, position))
        return True

    async def _fetch(self, conn: Connection, fetch: Fetch) -> None:
        server = self.server
        try:
            ended: ServerMessage | None = await asyncio.to_thread(
                server.store.read, conn.owner, fetch.id
            )
            if ended is None:
                ended = await asyncio.to_thread(server.store.ended, conn.owner, fetch.id)
        except StoreError as exc:  # a damaged result: say so, never leave the fetch unanswered
            log.error("fetch %s: %s", fetch.id, exc)
            conn.post(Error(ErrorCode.STORE_FAILED, str(exc), id=fetch.id))
            return
        except Exception as exc:
            log.exception("fetch %s failed", fetch.id)
            text = f"the server failed reading job {fetch.id!r} ({type(exc).__name__}); report it"
            conn.post(Error(ErrorCode.INTERNAL, text, id=fetch.id))
            return
        if ended is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no result {fetch.id!r} for this client; results are kept per token and "
                    "client_id, so reconnect with the client_id the server welcomed you with",
                    id=fetch.id,
                    field="id",
                )
            )
        else:  # the result, or how the job ended without one (error, cancelled, interrupted)
            conn.post(ended)
