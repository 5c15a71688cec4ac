"""Cost of switching conditioning between jobs on one loaded base model (tiny SD, CPU).

- ``derive_ms``: deriving a ControlNet pipeline from the loaded base with ``from_pipe`` (the
  pipeline cache is cleared before each, so every one is a real derivation);
- ``lora_switch_ms``: ``set_adapters`` between two loaded LoRAs and back to none;
- ``rss_mb``: resident memory after a warm-up and after 20 alternating jobs that switch
  ControlNets and LoRAs each time (must not grow).

Prints JSON; the goal is ≤ 50 ms per switch and no RSS growth.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sfumato.engine import Engine
from sfumato.engine import lora as lora_switch
from sfumato.protocol import Array, Control, ControlKind, Job, JobParams, LoraRef, Task
from sfumato.registry import Registry

REGISTRY = """include_builtin = true
[models.style-b]
kind = "lora"
family = "sd15"
source = "tiny:sd15-lora-style"
"""


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def job(n: int, controls: tuple[Control, ...], loras: tuple[LoraRef, ...]) -> Job:
    params = JobParams(prompt="x", width=64, height=64, steps=1, seed=1, loras=loras)
    return Job(f"j{n}", Task.GENERATE, params, controls=controls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switches", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sfumato-bench-"))
    (work / "models.toml").write_text(REGISTRY)
    registry = Registry.load(work / "models.toml")
    engine = Engine(registry, cache_dir=work / "cache", device="cpu")
    engine.load("tiny-sd")
    picture = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    depth = Control(ControlKind.DEPTH, Array.from_numpy(picture))
    canny = Control(ControlKind.CANNY, Array.from_numpy(picture))
    a, b = (LoraRef("tiny-sd-style", 1.0),), (LoraRef("style-b", 0.5),)
    plans = [((depth,), a), ((canny,), b), ((depth, canny), ()), ((), a + b)]

    def step(n: int) -> None:
        controls, loras = plans[n % len(plans)]
        engine.run(job(n, controls, loras), on_step=lambda *_: None, is_cancelled=lambda: False)

    for n in range(len(plans)):  # warm-up: every ControlNet and LoRA loaded once
        step(n)
    loaded = engine._loader.current
    assert loaded is not None
    derive = []
    for n in range(10):
        loaded.controlled.clear()
        names = ("tiny-sd-depth",) if n % 2 else ("tiny-sd-depth", "tiny-sd-canny")
        start = time.perf_counter()
        loaded.control_pipeline(Task.GENERATE, names)
        derive.append((time.perf_counter() - start) * 1000)
    switch = []
    for n in range(12):
        start = time.perf_counter()
        lora_switch.activate(loaded, (a, b, ())[n % 3], registry, work / "cache")
        switch.append((time.perf_counter() - start) * 1000)
    before = rss_mb()
    for n in range(args.switches):
        step(n)
    after = rss_mb()
    print(json.dumps({
        "model": "tiny-sd", "device": "cpu",
        "derive_ms": {"median": round(statistics.median(derive), 1), "max": round(max(derive), 1)},
        "lora_switch_ms": {"median": round(statistics.median(switch), 1), "max": round(max(switch), 1)},
        "switching_jobs": args.switches,
        "rss_mb": {"before": round(before, 1), "after": round(after, 1), "growth": round(after - before, 1)},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
