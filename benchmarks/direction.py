"""References and regions on the tiny model: how local a region's prompt is, and what each
costs. Prints JSON.

    .venv/bin/python benchmarks/direction.py [--side 128] [--steps 4] [--seeds 5] [--device cpu]

``region_ratio``: two regions (left and right halves); region A's prompt changed; the mean
absolute pixel change inside A over the mean change inside B, per seed (a tiny random UNet's
self-attention spreads any change over the whole latent, so this is a floor, not what a
trained model shows). ``regions_cost`` / ``reference_cost``: median run time of a job with two
regions / with one reference over the same job without, the jobs interleaved in one run
(the reference's first load excluded). Runs offline (tiny parts built in a temporary cache).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from sfumato.engine import Engine
from sfumato.protocol import Array, Job, JobParams, Reference, Region, Task
from sfumato.registry import Registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(Registry.load(None), Path(cache), device=args.device)
        print(json.dumps(measure(engine, args.side, args.steps, args.seeds), indent=2))


def measure(engine: Engine, side: int, steps: int, seeds: int) -> dict[str, object]:
    left = np.zeros((side, side, 1), np.uint8)
    left[:, : side // 2] = 255
    a, b = Array.from_numpy(left), Array.from_numpy(255 - left)
    picture = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    reference = Reference(Array.from_numpy(picture))

    def run(job: Job) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        out = engine.run(job, on_step=lambda *_: None, is_cancelled=lambda: False)
        return out.images[0].astype(float), time.perf_counter() - start

    ratios, plain_s, regions_s, reference_s = [], [], [], []
    base = Job("b", Task.GENERATE, JobParams(prompt="a room", width=side, height=side, steps=steps))
    run(replace(base, references=(reference,)))  # loads the adapter once
    for seed in range(seeds):
        job = replace(base, params=replace(base.params, seed=seed))
        first = replace(job, regions=(Region(a, "a brass lamp"), Region(b, "a walnut table")))
        second = replace(first, regions=(Region(a, "zebra stripes, blue"), first.regions[1]))
        _, t_plain = run(job)
        one, t_regions = run(first)
        two, _ = run(second)
        _, t_reference = run(replace(job, references=(reference,)))
        change = np.abs(one - two).mean(axis=2)
        ratios.append(float(change[:, : side // 2].mean() / change[:, side // 2 :].mean()))
        plain_s.append(t_plain)
        regions_s.append(t_regions)
        reference_s.append(t_reference)
    plain = statistics.median(plain_s)
    return {
        "side": side,
        "steps": steps,
        "device": engine.device,
        "region_ratio": [round(r, 2) for r in ratios],
        "region_ratio_median": round(statistics.median(ratios), 2),
        "plain_s": round(plain, 3),
        "regions_cost": round(statistics.median(regions_s) / plain, 2),
        "reference_cost": round(statistics.median(reference_s) / plain, 2),
    }


if __name__ == "__main__":
    main()
