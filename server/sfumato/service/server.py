"""The websocket transport: moves bytes between connections and the sans-I/O protocol, and
routes typed messages to the queue, the worker and the result store.

One connection = one :class:`Connection` with its own :class:`ServerSession` and an outbox
drained by a writer task, so a slow client never blocks the worker or another client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

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
    ProtocolError,
    ServerMessage,
    ServerSession,
    State,
    Welcome,
    encode,
    fragments,
)
from ..provenance import load_identity
from ..registry import Registry
from .admission import Refusal, admit
from .config import ServerConfig
from .jobs import FairQueue, JobEntry
from .store import ResultStore, owner_key
from .worker import Worker

log = logging.getLogger("sfumato.server")
CAPABILITIES = (
    "generate", "refine", "inpaint", "variants", "cancel", "fetch",
    "control", "lora", "tile", "preview", "outpaint", "upscale",
)  # fmt: skip
OUTBOX_PROGRESS_LIMIT = 64  # past this backlog a stalled client's progress events are dropped


@dataclass(eq=False)
class Connection:
    ws: ServerConnection
    number: int
    session: ServerSession
    owner: str = ""
    outbox: asyncio.Queue[ServerMessage] = field(default_factory=asyncio.Queue)

    def post(self, message: ServerMessage) -> None:
        if isinstance(message, Progress) and self.outbox.qsize() > OUTBOX_PROGRESS_LIMIT:
            return
        self.outbox.put_nowait(message)

    async def write_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            chunks = encode(message)
            try:
                if len(chunks) == 1:
                    await self.ws.send(chunks[0])
                else:
                    await self.ws.send(fragments(chunks))
            except ConnectionClosed:
                return


class SfumatoServer:
    def __init__(self, config: ServerConfig, registry: Registry | None = None) -> None:
        config.check()
        self.config = config
        self.registry = registry or Registry.load(config.registry)
        self.default_model = config.model or self.registry.default
        self.registry.get(self.default_model)  # fail at start, not at the first job
        self.store = ResultStore(config.results, config.png_compression)
        self.queue = FairQueue()
        self._owners: dict[str, set[Connection]] = defaultdict(set)
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.worker: Worker | None = None

    @property
    def tiny(self) -> bool:
        return self.registry.get(self.default_model).tiny

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
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
        self.worker = Worker(
            self.config, self.registry, self.store, self.queue, self._notify, identity
        )
        self._tasks.append(asyncio.create_task(self.worker.run(), name="sfumato-worker"))
        if self.config.preload:
            self._tasks.append(asyncio.create_task(self.worker.preload(self.default_model)))
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            origins=[
                None,
                *(Origin(o) for o in self.config.allowed_origins),
            ],  # browsers always send Origin
            compression=None,  # images do not compress, and deflate costs seconds on big passes
            max_size=2 * self.config.limits.max_message_bytes,  # past this: close 1009
            max_queue=64,
            server_header=f"sfumato/{__version__}",
        )
        if self.tiny:
            log.warning(
                "serving %s, the built-in tiny model: random weights, images are noise",
                self.default_model,
            )

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown()
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Connection(
            ws, next(self._numbers), ServerSession(self.config.limits, self.config.token)
        )
        writer = asyncio.create_task(conn.write_loop())
        try:
            async for data in ws:
                if isinstance(data, str):
                    conn.post(
                        Error(ErrorCode.BAD_FRAME, "send binary msgpack messages, not text frames")
                    )
                    continue
                try:
                    message = conn.session.receive(data)
                except ProtocolError as exc:
                    conn.post(Error(exc.code, exc.message, id=exc.id, field=exc.field))
                    if conn.session.state is State.CLOSED:
                        await self._flush(conn)
                        await ws.close(1008, "unauthorized")
                        return
                    continue
                self._dispatch(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self._owners[conn.owner].discard(conn)
            if not self._owners[conn.owner]:
                del self._owners[conn.owner]
            writer.cancel()

    async def _flush(self, conn: Connection, timeout: float = 2.0) -> None:
        """Let queued messages out (an error before a close, say) before the socket goes."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not conn.outbox.empty() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    def _notify(self, owner: str, message: ServerMessage) -> None:
        for conn in self._owners.get(owner, ()):
            conn.post(message)

    # ------------------------------------------------------------------ messages

    def _dispatch(self, conn: Connection, message: ClientMessage) -> None:
        if isinstance(message, Hello):
            self._hello(conn, message)
        elif isinstance(message, Job):
            self._submit(conn, message)
        elif isinstance(message, Cancel):
            self._cancel(conn, message)
        elif isinstance(message, Fetch):
            task = asyncio.create_task(self._fetch(conn, message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message, ListModels):
            conn.post(Models(self.registry.infos(), self.default_model))

    def _hello(self, conn: Connection, hello: Hello) -> None:
        client_id = hello.client_id or uuid.uuid4().hex
        conn.owner = owner_key(self.config.token, client_id)
        self._owners[conn.owner].add(conn)
        log.info("connection %d: %s %s", conn.number, hello.client, hello.version)
        notice = ""
        if self.tiny:
            notice = (
                f"Serving {self.default_model}, the built-in tiny model: random weights, so images "
                "are noise. Configure a real model in the registry (see docs/quickstart.md)."
            )
        conn.post(
            Welcome(
                server=__version__,
                protocol=PROTOCOL_VERSION,
                capabilities=CAPABILITIES,
                models=self.registry.infos(),
                default_model=self.default_model,
                limits=self.config.limits,
                client_id=client_id,
                notice=notice,
            )
        )

    def _submit(self, conn: Connection, job: Job) -> None:
        def refuse(code: ErrorCode, text: str, field: str | None = None) -> None:
            conn.post(Error(code, text, id=job.id, field=field))

        try:
            model = admit(job, self.registry, self.default_model).name
        except Refusal as refusal:
            return refuse(refusal.code, refusal.message, refusal.field)
        limit = self.config.limits.max_queued_jobs
        if self.queue.load(conn.number) >= limit:
            return refuse(
                ErrorCode.QUEUE_FULL,
                f"this connection already has {limit} jobs queued or running (max_queued_jobs); "
                "wait for one to finish or cancel one",
            )
        if self.queue.find(conn.owner, job.id) is not None or self.store.exists(conn.owner, job.id):
            return refuse(
                ErrorCode.DUPLICATE_ID, f"job id {job.id!r} is already used; pick a new id", "id"
            )
        position = self.queue.push(JobEntry(job, conn.owner, conn.number, model))
        conn.post(Accepted(job.id, position))
        assert self.worker is not None
        self.worker.kick()

    def _cancel(self, conn: Connection, cancel: Cancel) -> None:
        entry = self.queue.find(conn.owner, cancel.id)
        if entry is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no queued or running job {cancel.id!r}; it may have finished (fetch it)",
                    id=cancel.id,
                    field="id",
                )
            )
        elif self.queue.remove(entry):
            self._notify(conn.owner, Cancelled(cancel.id))
        else:
            entry.cancel.set()  # running: the engine stops at its next step

    async def _fetch(self, conn: Connection, fetch: Fetch) -> None:
        pending = self.queue.find(conn.owner, fetch.id)
        if pending is not None:  # still working: its events will reach this connection too
            order = self.queue.order()
            running = self.queue.running is not None
            position = order.index(pending) + running if pending in order else 0
            conn.post(Accepted(fetch.id, position))
            return
        result = await asyncio.to_thread(self.store.read, conn.owner, fetch.id)
        if result is None:
            conn.post(
                Error(
                    ErrorCode.NOT_FOUND,
                    f"no result {fetch.id!r} for this client; results are kept per token and "
                    "client_id, so reconnect with the client_id the server welcomed you with",
                    id=fetch.id,
                    field="id",
                )
            )
        else:
            conn.post(result)
