"""What the server protects itself with: the byte budget for client messages held in memory,
and the gate that keeps descriptors from running out (the settings are ``config.Resources``).

These are the server's own defences, not part of the protocol (``sfumato.protocol.Limits`` is
what ``welcome`` announces). Each one exists because a client — buggy, stalled or hostile —
once took the whole server down through it (issue 17): connections that never say hello,
clients that submit and never read, several huge messages at once, descriptor exhaustion.
"""

from __future__ import annotations

import asyncio
import resource
from collections import deque

from .config import ConfigError

# Descriptors kept free beside the connections: model weights, the result store, the log,
# the engine's threads. A first model load opens a few dozen files at once.
DESCRIPTOR_RESERVE = 128
# Sockets allowed beyond max_connections while they are being refused or still handshaking;
# past this a new socket is closed at once, before it costs anything.
SOCKET_SLACK = 32


def ensure_descriptors(max_connections: int) -> int:
    """Raise the soft descriptor limit as far as the hard one allows, then make sure
    ``max_connections`` (plus the refusal slack and the reserve) fits. Returns the limit.

    Running out of descriptors is what made the server stop answering anyone (EMFILE on
    accept, on model files, on the store): the cap must bite well before the kernel does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some sandboxes refuse; keep the soft limit
            pass
    needed = max_connections + SOCKET_SLACK + DESCRIPTOR_RESERVE
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise ConfigError(
            f"resources.max_connections ({max_connections}) needs about {needed} file "
            f"descriptors, but this process may open only {soft} (ulimit -n); lower "
            f"max_connections to at most {max(soft - SOCKET_SLACK - DESCRIPTOR_RESERVE, 0)} "
            "or raise the limit"
        )
    return int(soft)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 32 * 1024 * 1024


def return_big_buffers() -> bool:
    """Have glibc map every allocation of 32 MiB or more on its own, so a big buffer (a result
    being encoded, a decoded image) goes back to the system when it is freed. (Received
    messages no longer go through malloc: ``intake.Gathered`` maps each one itself.)

    glibc's default threshold rises after the first big free, and then big buffers may live
    in the heap, where growing one copies it and freeing it keeps the memory. 32 MiB is glibc's
    own ceiling for that threshold, so everything smaller — the engine's tensors — stays in the
    heap as by default: a 4 MiB threshold (tried first) kept messages lower (three 60 MiB
    messages at once: +86 MiB peak instead of +130) but mapped and zeroed every mid-sized
    tensor anew and made a served tiny 512² job 1.40× the bare pipeline instead of 1.06×
    (benchmarks/overhead.py). A no-op (False) where the C library is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


class ByteBudget:
    """Bytes of client messages the server holds at once, across every connection.

    A connection takes bytes as fragments arrive and gives them back when the message is done
    with (decoded and answered, or, for an accepted job, when the job ends). Waiters are
    served first come, first served, so one huge message cannot be starved by small ones.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def try_take(self, n: int) -> bool:
        if self._waiters or self.used + n > self.capacity:
            return False
        self.used += n
        return True

    async def take(self, n: int, timeout: float) -> bool:
        """Take ``n`` bytes, waiting up to ``timeout`` s for room; False if none came."""
        if self.try_take(n):
            return True
        if n > self.capacity:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (n, waiter)
        self._waiters.append(item)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            pass
        except BaseException:  # the connection went: never keep bytes nobody will give back
            if waiter.done() and not waiter.cancelled():
                self.give(n)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            if item in self._waiters:
                self._waiters.remove(item)
                self._wake()
        return waiter.done() and not waiter.cancelled()

    def give(self, n: int) -> None:
        self.used = max(self.used - n, 0)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            n, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.used + n > self.capacity:
                return
            self._waiters.popleft()
            self.used += n
            waiter.set_result(None)


class SocketGate:
    """Counts open sockets (handshaking or not) so that the server sheds new ones before the
    process runs out of descriptors, whatever the clients do."""

    def __init__(self, max_connections: int) -> None:
        self.ceiling = max_connections + SOCKET_SLACK
        self.open = 0
        self.shed = 0  # sockets closed at once because the ceiling was reached

    def admit(self) -> bool:
        if self.open >= self.ceiling:
            self.shed += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open = max(self.open - 1, 0)
