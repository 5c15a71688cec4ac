"""Blocking work the event loop waits for on a daemon thread of its own.

``asyncio.to_thread`` uses the loop's executor, whose threads the interpreter joins at exit:
a call that never returns (``ray.init`` retries an unreachable address for minutes) would
hold up the process's exit. A daemon thread does not, and a caller that stops waiting
(``asyncio.wait_for`` timing out) simply leaves it behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


async def in_daemon(work: Callable[[], object], name: str) -> None:
    """Run ``work`` on a daemon thread called ``name``; its exception is raised here."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():  # timed out already
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def run() -> None:
        outcome: BaseException | None = None
        try:
            work()
        except BaseException as exc:
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    await done
