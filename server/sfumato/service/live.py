"""Live jobs supersede each other (capability ``live``, docs/protocol.md 4.2.7).

A host that redraws while the user paints sends a job per change and wants only the newest:
a new live job of an identity and ``live_key`` ends that identity's queued live jobs of the
key at once and interrupts its running one at the next step, each ``cancelled`` with reason
``superseded``. Nothing else is touched — other identities, other keys, jobs that are not
live. The router calls :func:`supersede` before it counts the queue, so a burst of edits
never meets ``queue_full``.

Live jobs are not journaled (journal.py): an edit is stale by the time a server is back, and
its host has sent a newer one, so accepting one costs no fsync. A crash or SIGKILL forgets the
queued and running live jobs (a ``fetch`` of one after the restart answers ``not_found``); a
graceful stop ends each with ``interrupted`` (:func:`lost_to_stop`), recorded and sent before
the connections close (docs/protocol.md 8.1).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol import SUPERSEDED, Cancelled, Error, ErrorCode, Job

if TYPE_CHECKING:
    from .fair_queue import FairQueue, JobEntry
    from .worker import Worker

log = logging.getLogger("sfumato.server")


def superseded_by(queue: FairQueue, owner: str, job: Job) -> tuple[list[JobEntry], list[JobEntry]]:
    """The queued and the running jobs a new ``job`` of ``owner`` supersedes (pure)."""
    if not job.params.live:
        return [], []

    def same(entry: JobEntry) -> bool:
        params = entry.job.params
        return entry.owner == owner and params.live and params.live_key == job.params.live_key

    queued = [entry for entry in queue.order() if same(entry)]
    running = [entry for entry in queue.busy() if same(entry) and not entry.cancel.is_set()]
    return queued, running


async def supersede(queue: FairQueue, worker: Worker, owner: str, job: Job) -> int:
    """End what ``job`` supersedes: queued ones now, running ones at their next step.
    Returns how many were superseded."""
    queued, running = superseded_by(queue, owner, job)
    for entry in queued:
        if queue.remove(entry):
            entry.cancel_reason = SUPERSEDED
            log.info("job %s: superseded by %s", entry.job.id, job.id)
            await worker.end(entry, Cancelled(entry.job.id, SUPERSEDED))
    for entry in running:
        entry.cancel_reason = SUPERSEDED
        log.info("job %s: superseded by %s (stops at its next step)", entry.job.id, job.id)
        worker.interrupt(entry)
    return len(queued) + len(running)


def lost_to_stop(job_id: str) -> Error:
    """How a live job that the server's graceful stop caught queued or running ends: it is not
    journaled, so it does not run after the restart (protocol.md 8.1)."""
    return Error(
        ErrorCode.INTERRUPTED,
        f"live job {job_id!r} was dropped by a server stop: live jobs are not kept across a "
        "restart; send the current edit again once the server is back",
        id=job_id,
    )
