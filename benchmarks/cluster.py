"""What ``serve --ray`` buys and costs on one machine: throughput with 1 vs 2 CPU replicas, and
one job through a Ray replica vs the in-process worker. Prints JSON.

    .venv/bin/python benchmarks/cluster.py [--jobs 16] [--rounds 3] [--runs 7] [--side 256] [--steps 8]

One local Ray cluster (``ray.init(num_cpus=2)``) is started here; each ``sfumato serve --ray
ADDRESS`` front door joins it. Tiny model, txt2img at ``--side``², ``--steps`` steps, fixed
seeds, every result written to the store as usual.

All four setups run at once (one Ray cluster, four front doors; idle replicas cost nothing)
and take turns, so on a shared machine they share whatever else it is doing.

- ``throughput``: ``--jobs`` jobs queued at once by one client, jobs per second from the first
  submit to the last result, ``--rounds`` rounds each; 1 replica with one torch thread vs 2
  replicas with one torch thread each (goal: ratio ≥ 1.7 on two cores).
- ``latency``: one job at a time, ``--runs`` each, alternating: the in-process worker (torch
  on both cores) vs one Ray replica given both cores (``cpus_per_replica = 2``), so the
  difference is Ray's path: the actor call, streamed progress, images through the object store
  (goal: ratio ≤ 1.05). Each in-process job and the Ray job after it form a pair (the same
  moment's load); the median of the pairs' ratios and the ratio of the two minimums are the
  figures to trust on a shared machine, and ``ray_added_ms`` the absolute cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sfumato.cli.demo import start_server
from sfumato.client import Client, make_job


def jobs_per_second(url: str, jobs: int, side: int, steps: int) -> float:
    with Client(url, name="bench-throughput") as client:
        start = time.perf_counter()
        ids = [
            client.submit(
                make_job("generate", prompt="p", width=side, height=side, steps=steps, seed=n)
            )
            for n in range(jobs)
        ]
        for job_id in ids:
            client.wait(job_id, timeout=600)
        return jobs / (time.perf_counter() - start)


def one_job_seconds(url: str, runs: int, side: int, steps: int, warm: bool = True) -> list[float]:
    with Client(url, name="bench-latency") as client:

        def once() -> float:
            job = make_job("generate", prompt="p", width=side, height=side, steps=steps, seed=1)
            start = time.perf_counter()
            client.run(job, timeout=600)
            return time.perf_counter() - start

        if warm:
            once()  # the model loads
        return [once() for _ in range(runs)]


def serve(work: Path, name: str, cpus: int, *extra: str) -> tuple[subprocess.Popen[str], str]:
    config = work / f"{name}.toml"
    config.write_text(f"[limits]\nmax_queued_jobs = 64\n\n[cluster]\ncpus_per_replica = {cpus}\n")
    return start_server(
        work / f"results-{name}", "--cache", str(work / "cache"), "--config", str(config),
        "--no-preload", *extra, timeout=600,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per setup")
    parser.add_argument("--runs", type=int, default=7, help="single jobs per setup")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    import ray

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="sfumato-bench-cluster-"))
    # Logical CPUs for Ray's placement: every setup's replicas exist at once (idle ones cost
    # nothing), so the setups alternate and share whatever else the machine is doing.
    # at normal priority, as docs/scaling.md sets a node up (Ray's default niceness is 15)
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False, namespace="sfumato")
    address = ray.get_runtime_context().gcs_address
    setups = {
        "ray-1": (1, "--ray", address, "--replicas", "1"),
        "ray-2": (1, "--ray", address, "--replicas", "2"),
        "in-process": (1,),
        "ray-1x2": (2, "--ray", address, "--replicas", "1"),  # one replica on both cores
    }
    procs: list[subprocess.Popen[str]] = []
    urls = {}
    try:
        for name, (cpus, *extra) in setups.items():
            proc, urls[name] = serve(work, name, int(cpus), *map(str, extra))
            procs.append(proc)
        for name in ("ray-1", "ray-2"):  # warm: replicas up, model loaded
            jobs_per_second(urls[name], 2, args.side, 1)
        throughput: dict[str, list[float]] = {"ray-1": [], "ray-2": []}
        for _ in range(args.rounds):
            for name, rates in throughput.items():
                rates.append(jobs_per_second(urls[name], args.jobs, args.side, args.steps))
        latency: dict[str, list[float]] = {"in-process": [], "ray-1x2": []}
        for name in latency:
            one_job_seconds(urls[name], 0, args.side, args.steps)  # warm
        for _ in range(args.runs):
            for name, samples in latency.items():
                samples.extend(one_job_seconds(urls[name], 1, args.side, args.steps, warm=False))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
        ray.shutdown()
    best = {k: max(v) for k, v in throughput.items()}
    # Each round's two setups ran back to back, so their ratio shares that moment's load.
    round_ratios = [b / a for a, b in zip(throughput["ray-1"], throughput["ray-2"], strict=True)]
    pairs = list(zip(latency["in-process"], latency["ray-1x2"], strict=True))
    pair_ratios = [ray_s / local_s for local_s, ray_s in pairs]
    added_ms = [1000 * (ray_s - local_s) for local_s, ray_s in pairs]
    fast = {k: min(v) for k, v in latency.items()}
    print(json.dumps({
        "benchmark": "cluster",
        "job": f"tiny sd15 txt2img {args.side}² {args.steps} steps",
        "cpus": os.cpu_count(),
        "load_average_at_end": round(os.getloadavg()[0], 2),
        "throughput_jobs_per_round": args.jobs,
        "jobs_per_s_1_replica": [round(x, 3) for x in throughput["ray-1"]],
        "jobs_per_s_2_replicas": [round(x, 3) for x in throughput["ray-2"]],
        "throughput_ratio_best": round(best["ray-2"] / best["ray-1"], 3),
        "throughput_ratio_median_of_rounds": round(statistics.median(round_ratios), 3),
        "one_job_in_process_s": [round(x, 3) for x in latency["in-process"]],
        "one_job_through_ray_s": [round(x, 3) for x in latency["ray-1x2"]],
        "latency_ratio_of_mins": round(fast["ray-1x2"] / fast["in-process"], 3),
        "latency_ratio_median_of_pairs": round(statistics.median(pair_ratios), 3),
        "ray_added_ms_median_of_pairs": round(statistics.median(added_ms), 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
