"""A job worker that dies never goes unnoticed: it is restarted, and when it keeps dying the
server says it is not ready and refuses jobs with a typed error. The fault is injected (the
queue raises) into a real server in this process, reached over a real loopback websocket."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from websockets.asyncio.client import connect

from sfumato.client import make_job
from sfumato.protocol import (
    Error,
    ErrorCode,
    Hello,
    Welcome,
    decode_server_message,
    encode_bytes,
)
from sfumato.service import ServerConfig, SfumatoServer


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_dying_worker_is_restarted_then_reported_as_not_ready(tmp_path: Path) -> None:
    async def main() -> tuple[Welcome, Error, int]:
        config = ServerConfig(
            port=0, results=tmp_path / "results", cache=tmp_path / "cache",
            preload=False, credentials=False,
        )  # fmt: skip
        server = SfumatoServer(config)
        await server.start()
        pops = 0

        def broken_pop() -> None:
            nonlocal pops
            pops += 1
            raise RuntimeError("injected: the queue broke")

        server.queue.pop = broken_pop  # type: ignore[method-assign]
        assert server.worker is not None
        server.worker.kick()
        try:
            for _ in range(200):  # the first death and each restart die at once
                await asyncio.sleep(0.01)
                if server._worker_dead:
                    break
            async with connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws:
                await ws.send(encode_bytes(Hello("test", "0")))
                welcome = decode_server_message(await asyncio.wait_for(ws.recv(), 10))
                job = make_job("generate", prompt="x", width=64, height=64, steps=1)
                await ws.send(encode_bytes(job))
                refusal = decode_server_message(await asyncio.wait_for(ws.recv(), 10))
        finally:
            await server.close()
        assert isinstance(welcome, Welcome) and isinstance(refusal, Error)
        assert refusal.id == job.id
        return welcome, refusal, pops

    records, logger = _Records(), logging.getLogger("sfumato.server")
    logger.addHandler(records)
    try:
        welcome, refusal, pops = asyncio.run(main())
    finally:
        logger.removeHandler(records)
    assert pops == 4  # the first run and three restarts
    assert welcome.ready is False and "worker stopped" in welcome.status
    assert refusal.code is ErrorCode.ENGINE_UNAVAILABLE and "restart the server" in refusal.message
    assert records.messages.count("the job worker stopped") == 4  # each death is logged
