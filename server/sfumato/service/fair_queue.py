"""Jobs waiting and running, and the fair order in which the one worker takes them.

Fairness is round-robin across identities (token + client_id, what results are filed under):
a client that queues eight jobs does not make a client that queues one wait for all eight, and
opening more connections under one identity buys no bigger share, nor a longer queue (the
``max_queued_jobs`` limit counts per identity too). Pure data structure; no asyncio.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..protocol import Job


@dataclass(eq=False)
class JobEntry:
    job: Job
    owner: str  # identity results are filed under (store.owner_key): the unit of fairness
    connection: int  # the connection that submitted it (for the log)
    model: str  # resolved registry name
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""  # cancelled.reason when it ends cancelled: superseded (live.py)

    @property
    def key(self) -> tuple[str, str]:
        return (self.owner, self.job.id)


class FairQueue:
    def __init__(self) -> None:
        self._lanes: OrderedDict[str, deque[JobEntry]] = OrderedDict()  # by owner
        self.running: JobEntry | None = None  # the in-process worker's one job
        # Jobs running on engine replicas of a Ray cluster (cluster.py), several at once.
        self.placed: dict[tuple[str, str], JobEntry] = {}

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def push(self, entry: JobEntry) -> int:
        """Queue a job; returns how many jobs will run before it (the running one included)."""
        self._lanes.setdefault(entry.owner, deque()).append(entry)
        return self.order().index(entry) + len(self.busy())

    def busy(self) -> list[JobEntry]:
        """The jobs running now: the in-process worker's, or those on cluster replicas."""
        running = [] if self.running is None else [self.running]
        return running + list(self.placed.values())

    def pop(self) -> JobEntry | None:
        """The next job in round-robin order; its lane moves to the back."""
        if not self._lanes:
            return None
        owner, lane = next(iter(self._lanes.items()))
        entry = lane.popleft()
        del self._lanes[owner]
        if lane:
            self._lanes[owner] = lane
        return entry

    def order(self) -> list[JobEntry]:
        """Queued jobs in the order they will run."""
        lanes = [list(lane) for lane in self._lanes.values()]
        out: list[JobEntry] = []
        for depth in range(max((len(lane) for lane in lanes), default=0)):
            out.extend(lane[depth] for lane in lanes if depth < len(lane))
        return out

    def find(self, owner: str, job_id: str) -> JobEntry | None:
        """A queued or running job of this owner."""
        if self.running is not None and self.running.key == (owner, job_id):
            return self.running
        if (owner, job_id) in self.placed:
            return self.placed[owner, job_id]
        for lane in self._lanes.values():
            for entry in lane:
                if entry.key == (owner, job_id):
                    return entry
        return None

    def remove(self, entry: JobEntry) -> bool:
        """Take a queued job out (cancel). False if it is not queued (running or gone)."""
        lane = self._lanes.get(entry.owner)
        if lane is None or entry not in lane:
            return False
        lane.remove(entry)
        if not lane:
            del self._lanes[entry.owner]
        return True

    def load(self, owner: str) -> int:
        """Jobs of one identity over all its connections, queued plus running (the
        ``max_queued_jobs`` limit)."""
        running = sum(entry.owner == owner for entry in self.busy())
        return len(self._lanes.get(owner, ())) + running
