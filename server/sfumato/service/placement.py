"""Where a job runs on the cluster: the front door's picture of its replicas, and the choice.

The fair queue decides *which* job runs next; this decides *where*: on a free replica that has
the job's base model loaded, else on a free one with nothing loaded, else on any free one
(which then switches models). A job whose replica died runs again once, on another replica
while any other is alive. Pure data and functions, no Ray and no asyncio, so the policy is
tested on its own (tests/cluster/test_placement_pure.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Slot:
    """One replica as the front door sees it."""

    index: int
    name: str
    alive: bool = True  # takes jobs; False while Ray restarts it, and once it is down
    down: bool = False  # for good: Ray's restarts are spent (or it never started)
    running: tuple[str, str] | None = None  # the key (owner, job id) of the job it runs
    loaded: str | None = None  # the base model it last loaded (its affinity)

    @property
    def free(self) -> bool:
        return self.alive and self.running is None


def choose(slots: Sequence[Slot], model: str, avoid: int | None = None) -> Slot | None:
    """The free replica for a job on ``model``, or None when it must wait.

    ``avoid`` is the replica a retried job died on: it is passed over while any other replica
    is up or restarting (the retry waits for one of those to be free); only when every other
    is down for good does the job go back to it, restarted."""
    others = any(not s.down and s.index != avoid for s in slots)
    free = [s for s in slots if s.free and not (others and s.index == avoid)]
    if not free:
        return None
    return min(free, key=lambda s: (s.loaded != model, s.loaded is not None, s.index))


def all_down(slots: Sequence[Slot]) -> bool:
    """No replica can ever take a job again (none exist, or Ray's restarts are spent)."""
    return all(s.down for s in slots)
