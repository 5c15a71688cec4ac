"""What acceptance costs a live job (issue 12): submit → ``accepted``, ms, against a real
``sfumato serve`` on loopback (tiny sd15). Prints JSON.

A long normal job keeps the worker busy, so every measured job only queues: each one is a
refine of a 256² image (one step), sent, timed until its ``accepted``, then cancelled (the
cancel is not timed). ``live`` jobs each have their own ``live_key`` (nothing superseded, so
only admission is measured); ``normal`` jobs are the same refine without ``live`` — they are
journaled (written and fsync'd) before ``accepted``; ``live_superseding`` jobs share one key,
so each one supersedes the one before it (still queued), whose ``cancelled`` is recorded
before this one's ``accepted``. Medians and 90th percentiles of --runs each, interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import connect

from sfumato.cli.demo import start_server
from sfumato.client import DIRECT, make_job
from sfumato.protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Hello,
    Job,
    Progress,
    Result,
    decode_server_message,
    encode_bytes,
)

# live: a key of its own (nothing superseded); live_superseding: one key, so each supersedes
# the one before it, still queued (its `cancelled` is recorded before this one's `accepted`).
KINDS: dict[str, dict[str, Any]] = {
    "live": {"live": True},
    "normal": {},
    "live_superseding": {"live": True, "live_key": "one"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    image = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "results")
        try:
            with connect(url, compression=None, max_size=None, **DIRECT) as ws:

                def until(job_id: str, kind: type) -> float:
                    while True:
                        message = decode_server_message(ws.recv(timeout=120))
                        if isinstance(message, kind) and getattr(message, "id", None) == job_id:
                            return time.perf_counter()
                        if isinstance(message, (Error, Result)):  # refused, or the long one ended
                            raise SystemExit(f"unexpected: {message!r}"[:400])

                ws.send(encode_bytes(Hello("bench", "0")))
                ws.recv(timeout=60)
                long = make_job("generate", prompt="long", width=1024, height=1024, steps=150)
                ws.send(encode_bytes(long))
                until(long.id, Accepted)
                while True:  # running: every job after it only queues
                    message = decode_server_message(ws.recv(timeout=300))
                    if isinstance(message, Progress) and message.id == long.id and message.step:
                        break
                times: dict[str, list[float]] = {kind: [] for kind in KINDS}
                last = ""
                for n in range(args.runs):
                    for kind, extra in KINDS.items():
                        extra = {**extra, "live_key": f"k{n}"} if kind == "live" else extra
                        job: Job = make_job(
                            "refine", image, prompt="edit", steps=1, strength=1.0, seed=n, **extra
                        )
                        data = encode_bytes(job)
                        start = time.perf_counter()
                        ws.send(data)
                        times[kind].append((until(job.id, Accepted) - start) * 1000)
                        if kind == "live_superseding":  # the next one of its key ends it
                            last = job.id
                            continue
                        ws.send(encode_bytes(Cancel(job.id)))
                        until(job.id, Cancelled)
                ws.send(encode_bytes(Cancel(last)))
                ws.send(encode_bytes(Cancel(long.id)))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    out = {
        kind: {
            "accepted_median_ms": round(statistics.median(values), 3),
            "accepted_p90_ms": round(sorted(values)[int(0.9 * len(values)) - 1], 3),
            "runs": len(values),
        }
        for kind, values in times.items()
    }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
