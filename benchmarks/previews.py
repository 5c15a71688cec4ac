"""What step previews cost: the same job (tiny SD, 512², 8 steps, same seed) with
``preview_every=1`` (a TAESD-shaped preview every step) and with previews off, alternating,
median of --runs each. Prints JSON; the goal is a ratio ≤ 1.10.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sfumato.engine import Engine
from sfumato.protocol import Job, JobParams, Task
from sfumato.registry import Registry

SIDE, STEPS = 512, 8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    engine = Engine(
        Registry.load(None), cache_dir=Path(tempfile.mkdtemp(prefix="sfumato-bench-")), device="cpu"
    )
    engine.load("tiny-sd")
    times: dict[int, list[float]] = {0: [], 1: []}
    previews = 0

    def count(step: int, total: int, preview: object) -> None:
        nonlocal previews
        previews += preview is not None

    for run in range(args.runs + 1):  # the first round warms up (loads the preview decoder)
        for every in (0, 1):
            params = JobParams(prompt="x", width=SIDE, height=SIDE, steps=STEPS, seed=1,
                               preview_every=every)  # fmt: skip
            start = time.perf_counter()
            engine.run(Job("j", Task.GENERATE, params), on_step=count, is_cancelled=lambda: False)
            if run:
                times[every].append(time.perf_counter() - start)
    off, on = statistics.median(times[0]), statistics.median(times[1])
    print(json.dumps({
        "model": "tiny-sd", "device": "cpu", "size": SIDE, "steps": STEPS, "runs": args.runs,
        "off_s": round(off, 3), "every_step_s": round(on, 3), "ratio": round(on / off, 3),
        "previews_sent": previews,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
