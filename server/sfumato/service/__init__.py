"""The server process: websocket transport, sessions, job queue, worker and result store.

Imports no torch: the worker imports :mod:`sfumato.engine` on its own thread when the first
model loads, so ``sfumato serve`` accepts connections at once.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from .config import ConfigError, ServerConfig
from .server import SfumatoServer

__all__ = ["ConfigError", "ServerConfig", "SfumatoServer", "run"]

log = logging.getLogger("sfumato.server")

# Set by a plugin that starts the server (hostlaunch.py): stop, as on SIGTERM, when standard
# input closes. Its other end is a pipe only the host app holds, so the server goes with the
# host even when the host crashes or is killed, instead of holding the port for nobody.
STOP_WITH_STDIN = "SFUMATO_STOP_WITH_STDIN"


def run(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM (or, under ``$SFUMATO_STOP_WITH_STDIN``, until standard
    input closes). Prints the URL once listening (tests and scripts wait on it)."""
    with_stdin = os.environ.pop(STOP_WITH_STDIN, "") == "1"  # not for our own children

    async def main() -> None:
        server = SfumatoServer(config)
        await server.start()
        print(f"Sfumato listening on ws://{config.host}:{server.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if with_stdin:
            threading.Thread(
                target=_until_stdin_closes, args=(lambda: loop.call_soon_threadsafe(stop.set),),
                name="sfumato-stdin", daemon=True,
            ).start()  # fmt: skip
        await stop.wait()
        log.info("stopping: unfinished jobs stay journaled and run after the restart")
        await server.close()
        if server.worker is not None and server.worker.engine_busy.is_set():
            # The engine thread cannot be stopped from outside (a model still loading, say);
            # waiting for it would make the stop unbounded, and its job is journaled.
            log.warning("the engine is still busy; exiting without waiting for it")
            logging.shutdown()
            os._exit(0)

    asyncio.run(main())
    # Everything is closed and journaled now. The interpreter's own teardown of torch,
    # diffusers and transformers would still take seconds (17 s measured on a busy 2-core
    # box) — the time a plugin's Stop, a restart or a test waits for the process to end. Run
    # the exit handlers (logging, executors, Ray …), flush, and leave without the teardown.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _until_stdin_closes(then: Callable[[], object]) -> None:
    """Read standard input to its end (what arrives is ignored), then ``then()``."""
    try:
        fd = sys.stdin.fileno()
        while os.read(fd, 4096):
            pass
    except (OSError, ValueError, AttributeError):  # no usable stdin: the host is gone
        pass
    log.info("standard input closed: the program that started this server is gone; stopping")
    then()
