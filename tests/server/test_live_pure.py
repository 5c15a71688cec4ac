"""Which jobs a new live job supersedes (service/live.py), over random queues: exactly the
queued and running live jobs of its own identity and key; never another's, never a plain job."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import Job, JobParams, Task
from sfumato.service.fair_queue import FairQueue, JobEntry
from sfumato.service.live import superseded_by

from ..protocol.strategies import FAST

owners = st.sampled_from(["a", "b"])
keys = st.sampled_from([None, "doc", "other"])  # None: not a live job


def make(n: int, owner: str, key: str | None) -> JobEntry:
    params = JobParams(live=key is not None, live_key=key)
    return JobEntry(Job(f"j{n}", Task.GENERATE, params), owner, 1, "tiny-sd")


@FAST
@given(
    queued=st.lists(st.tuples(owners, keys), max_size=12),
    running=st.none() | st.tuples(owners, keys),
    new=st.tuples(owners, keys),
)
def test_exactly_the_same_identity_and_key_is_superseded(
    queued: list[tuple[str, str | None]],
    running: tuple[str, str | None] | None,
    new: tuple[str, str | None],
) -> None:
    queue = FairQueue()
    entries = [make(n, o, k) for n, (o, k) in enumerate(queued)]
    for entry in entries:
        queue.push(entry)
    busy = None if running is None else make(99, *running)
    queue.running = busy
    job = make(100, *new).job
    gone_queued, gone_running = superseded_by(queue, new[0], job)

    def same(entry: JobEntry) -> bool:
        return new[1] is not None and (entry.owner, entry.job.params.live_key) == new

    assert gone_queued == [e for e in queue.order() if same(e)]
    assert gone_running == ([busy] if busy is not None and same(busy) else [])
    if busy is not None:  # a cancel already asked for is not asked again
        busy.cancel.set()
        assert superseded_by(queue, new[0], job)[1] == []
