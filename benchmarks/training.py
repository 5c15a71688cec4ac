"""LoRA training on the tiny model: what a step costs, what a checkpoint adds, whether the
loss falls. Prints JSON.

    .venv/bin/python benchmarks/training.py [--steps 60] [--resolution 64] [--device cpu]

``step_s``: seconds per training step (min and median over the run's steps, from the
progress callback's timestamps; a checkpoint step excluded). ``checkpoint_ratio``: the median
checkpoint step over the median plain step, both measured in this run (a checkpoint writes
the LoRA weights, the optimizer's state and the generator's state). ``resume_equal``: a run
cancelled at half time and resumed ends with the same LoRA bytes as the uninterrupted run.
``loss_first`` / ``loss_last``: the mean loss of the first and the last tenth of the steps —
on a tiny random UNet this shows the optimiser works, not what a real model learns.
Runs offline (the tiny model is built into a temporary cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sfumato.engine.tiny import ensure_tiny
from sfumato.engine.training import TrainingCancelled, TrainStep, train_lora
from sfumato.registry import Registry
from sfumato.training import defaults_for, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cache"
        ensure_tiny(cache, "sd15")
        data = root / "data"
        data.mkdir()
        (data / "dataset.toml").write_text(
            'owner = "bench"\nlicense = "CC0-1.0"\nsource = "generated"\n'
        )
        rng = np.random.default_rng(0)
        for n in range(4):
            Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)).save(
                data / f"{n}.png"
            )
            (data / f"{n}.txt").write_text(f"a benchmark picture {n}")
        dataset = load_dataset(data)
        base = Registry.load(None).get("tiny-sd")
        every = max(args.steps // 6, 2)
        opts = defaults_for("sd15", tiny=True, steps=args.steps, resolution=args.resolution,
                            checkpoint_every=every, learning_rate=1e-3)  # fmt: skip
        stamps: list[tuple[int, float, float]] = []

        def record(step: TrainStep) -> None:
            stamps.append((step.step, time.perf_counter(), step.loss))

        started = time.perf_counter()
        out = train_lora(dataset, base, "bench", root / "a", opts, cache_dir=cache,
                         device=args.device, on_step=record)  # fmt: skip
        total = time.perf_counter() - started
        # A step's time is from the previous callback to its own; a checkpoint is written after
        # the callback of its step, so it lands in the time of the step after it.
        gaps = [(s, t - stamps[i - 1][1]) for i, (s, t, _l) in enumerate(stamps) if i]
        after_checkpoint = [g for s, g in gaps if (s - 1) % every == 0 and s > 1]
        plain = [g for s, g in gaps if (s - 1) % every != 0]
        half: list[int] = []
        with contextlib.suppress(TrainingCancelled):  # "Ctrl-C" at half time
            train_lora(dataset, base, "bench", root / "b", opts, cache_dir=cache, device=args.device,
                       on_step=lambda s: half.append(s.step),
                       is_cancelled=lambda: len(half) >= args.steps // 2)  # fmt: skip
        resumed = train_lora(dataset, base, "bench", root / "b", opts, cache_dir=cache,
                             device=args.device, resume=True)  # fmt: skip
        tenth = max(args.steps // 10, 1)
        losses = [loss for _s, _t, loss in stamps]
        print(json.dumps({
            "device": args.device, "resolution": args.resolution, "steps": args.steps,
            "images": len(dataset.samples), "total_s": round(total, 3),
            "step_s": {"min": round(min(plain), 4), "median": round(statistics.median(plain), 4)},
            "checkpoint_ratio": round(statistics.median(after_checkpoint) / statistics.median(plain), 2)
            if after_checkpoint else None,
            "lora_bytes": out.lora.stat().st_size,
            "resume_equal": resumed.lora.read_bytes() == out.lora.read_bytes(),
            "loss_first": round(statistics.mean(losses[:tenth]), 4),
            "loss_last": round(statistics.mean(losses[-tenth:]), 4),
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
