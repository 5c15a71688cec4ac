"""What the server and client add to a job: the same txt2img (tiny model, 512², 4 steps,
same seed) as a bare diffusers call and through ``sfumato serve`` + ``sfumato.client``.

Both run in this process's machine, one after the other, alternating, median of --runs.
The bare call loads the same saved tiny pipeline with ``from_pretrained`` and calls it
directly; the served job includes the websocket round trip, progress events every step,
PNG + JSON written to the result store and the result sent back. Prints JSON; the goal is a
ratio ≤ 1.02.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from sfumato.cli.demo import start_server
from sfumato.client import Client, make_job
from sfumato.engine.tiny import ensure_tiny

SIDE, STEPS, SEED = 512, 4, 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sfumato-bench-"))
    folder = ensure_tiny(work / "cache", "sd15")
    pipe = StableDiffusionPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)

    def bare() -> None:
        with torch.inference_mode():
            pipe(
                "a lighthouse", width=SIDE, height=SIDE, num_inference_steps=STEPS,
                generator=torch.Generator().manual_seed(SEED), callback_on_step_end=lambda p, i, t, k: k,
            )  # fmt: skip

    proc, url = start_server(work / "results", "--cache", str(work / "cache"))
    try:
        with Client(url, name="bench") as client:

            def served() -> None:
                job = make_job(
                    "generate",
                    prompt="a lighthouse",
                    width=SIDE,
                    height=SIDE,
                    steps=STEPS,
                    seed=SEED,
                )
                client.run(job, timeout=600)

            bare()
            served()  # warm both (the server loads its model on the first job)
            bare_s, served_s = [], []
            for _ in range(args.runs):
                for fn, samples in ((bare, bare_s), (served, served_s)):
                    start = time.perf_counter()
                    fn()
                    samples.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    b, s = statistics.median(bare_s), statistics.median(served_s)
    print(json.dumps({
        "benchmark": "overhead", "job": f"tiny sd15 txt2img {SIDE}² {STEPS} steps", "runs": args.runs,
        "bare_diffusers_s": round(b, 3), "served_s": round(s, 3), "ratio": round(s / b, 3),
        "bare_samples": [round(x, 3) for x in bare_s], "served_samples": [round(x, 3) for x in served_s],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
