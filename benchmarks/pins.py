"""What checking a reference job's IP-Adapter and image encoder pins costs per job: the two
extra ``WeightHashes.verify`` calls ``Engine.run`` makes (the tiny sd15 adapter and encoder,
built in a temporary cache). Prints JSON.

    .venv/bin/python benchmarks/pins.py [--jobs 1000] [--repeats 7]

``first_ms``: the first check in a fresh process (every weight file hashed, the result cached
in ``weight-hashes.json``); ``warm_ms``: median and minimum per job afterwards (a stat per
file, the manifest recomputed from the cached file hashes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sfumato.engine.hashing import WeightHashes
from sfumato.engine.tiny_parts import ensure_part
from sfumato.registry import Registry
from sfumato.registry.adapters import ip_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pair = ip_adapter(Registry.load(None), "sd15", tiny=True)
    with tempfile.TemporaryDirectory(prefix="sfumato-pins-") as folder:
        cache = Path(folder)
        for entry in pair:
            ensure_part(cache, entry.source)
        start = time.perf_counter()
        WeightHashes(cache).verify(pair)
        first = time.perf_counter() - start
        hashes = WeightHashes(cache)
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.jobs):
                hashes.verify(pair)
            runs.append((time.perf_counter() - start) / args.jobs * 1e3)
    print(json.dumps({
        "entries": [e.name for e in pair], "first_ms": round(first * 1e3, 3),
        "warm_ms": {"median": round(statistics.median(runs), 4), "min": round(min(runs), 4)},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
