"""The fair queue (service/fair_queue.py), pure: hypothesis drives random sequences of pushes,
pops, cancels and running jobs from several owners (each over several connections) and checks
what the queue promises after every step — round-robin across owners, first in first out
within one, positions that tell the truth, and the per-identity load that ``max_queued_jobs``
counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import Job, JobParams, Task
from sfumato.service.fair_queue import FairQueue, JobEntry

from ..protocol.strategies import FAST

OWNERS = ("alice", "bob", "carol", "dave")


def entry(owner: str, job_id: str, connection: int = 0) -> JobEntry:
    job = Job(job_id, Task.GENERATE, JobParams(width=64, height=64))
    return JobEntry(job, owner=owner, connection=connection, model="tiny-sd")


@dataclass(frozen=True)
class Push:
    owner: str
    connection: int


@dataclass(frozen=True)
class Pop:
    pass


@dataclass(frozen=True)
class Remove:
    pick: int  # index into the queued jobs, modulo their number


@dataclass(frozen=True)
class Finish:  # the running job ends (the worker sets running to None)
    pass


operations = st.lists(
    st.one_of(
        st.builds(Push, st.sampled_from(OWNERS), st.integers(0, 3)),
        st.just(Pop()),
        st.builds(Remove, st.integers(0, 50)),
        st.just(Finish()),
    ),
    max_size=60,
)


def assert_round_robin(order: list[JobEntry]) -> None:
    """Every prefix of ``order`` takes at most one job more from any owner than from any other
    owner that still has jobs after the prefix: nobody waits behind two of someone's jobs
    while they have one queued."""
    total = Counter(e.owner for e in order)
    taken: Counter[str] = Counter()
    for e in order:
        waiting = [o for o in total if taken[o] < total[o] and o != e.owner]
        assert all(taken[e.owner] <= taken[o] for o in waiting), (e.owner, taken, total)
        taken[e.owner] += 1


@FAST
@given(operations)
def test_every_step_keeps_the_queue_s_promises(ops: list[object]) -> None:
    queue = FairQueue()
    queued: list[JobEntry] = []  # in push order
    for n, op in enumerate(ops):
        if isinstance(op, Push):
            new = entry(op.owner, f"job-{n}", op.connection)
            before = queue.order()
            position = queue.push(new)
            queued.append(new)
            order = queue.order()
            assert position == order.index(new) + (queue.running is not None)
            # what ran before it still does: a push never overtakes a queued job
            assert [e for e in order if e is not new] == before
            if not any(e.owner == op.owner for e in before):
                # a newcomer waits behind at most one job of each other owner
                assert order.index(new) <= len({e.owner for e in before})
        elif isinstance(op, Pop):
            order = queue.order()
            got = queue.pop()
            if not order:
                assert got is None
                continue
            assert got is order[0]  # order() is the order pop() keeps
            assert queue.order() == order[1:]
            queued.remove(got)
            queue.running = got
        elif isinstance(op, Remove) and queued:
            gone = queued.pop(op.pick % len(queued))
            assert queue.remove(gone)
            assert not queue.remove(gone)  # not queued any more
            assert queue.find(gone.owner, gone.job.id) is None
        elif isinstance(op, Finish):
            queue.running = None
        order = queue.order()
        assert len(queue) == len(order) == len(queued)
        assert {id(e) for e in order} == {id(e) for e in queued}
        for owner in OWNERS:  # first in, first out within one owner, whatever its connection
            mine = [e for e in queued if e.owner == owner]
            assert [e for e in order if e.owner == owner] == mine
            running = queue.running is not None and queue.running.owner == owner
            assert queue.load(owner) == len(mine) + running
        assert_round_robin(order)
        for e in queued:
            assert queue.find(e.owner, e.job.id) is e
        if queue.running is not None:
            assert queue.find(queue.running.owner, queue.running.job.id) is queue.running
            assert not queue.remove(queue.running)  # the running job is not queued


@FAST
@given(st.lists(st.sampled_from(OWNERS), min_size=1, max_size=40))
def test_popping_everything_alternates_owners_while_several_wait(owners: list[str]) -> None:
    queue = FairQueue()
    for n, owner in enumerate(owners):
        queue.push(entry(owner, f"job-{n}", connection=n))  # a new connection each time
    popped: list[JobEntry] = []
    while (e := queue.pop()) is not None:
        popped.append(e)
    assert len(popped) == len(owners) and len(queue) == 0
    assert_round_robin(popped)
    for owner in set(owners):
        ids = [int(e.job.id.split("-")[1]) for e in popped if e.owner == owner]
        assert ids == sorted(ids)
    # rounds: in round k each owner with more than k jobs runs its k-th job, in the order
    # the owners first queued
    first_seen = list(dict.fromkeys(owners))
    counts = Counter(owners)
    expected = [o for k in range(max(counts.values())) for o in first_seen if counts[o] > k]
    assert [e.owner for e in popped] == expected


@FAST
@given(st.integers(1, 12), st.integers(0, 5))
def test_a_newcomer_waits_behind_one_job_of_a_client_that_queued_many(
    many: int, running: int
) -> None:
    queue = FairQueue()
    if running:
        queue.running = entry("carol", "busy")
    for n in range(many):
        queue.push(entry("alice", f"a{n}", connection=n % 3))
    position = queue.push(entry("bob", "b0"))
    assert position == 1 + (running > 0)
    assert [e.owner for e in queue.order()][:2] == ["alice", "bob"]


def test_same_job_id_under_two_owners_are_two_jobs() -> None:
    queue = FairQueue()
    mine, theirs = entry("alice", "same"), entry("bob", "same")
    queue.push(mine)
    queue.push(theirs)
    assert queue.find("alice", "same") is mine and queue.find("bob", "same") is theirs
    assert queue.remove(theirs) and queue.find("alice", "same") is mine
    assert queue.find("bob", "same") is None
    assert queue.load("alice") == 1 and queue.load("bob") == 0
