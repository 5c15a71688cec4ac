"""Krita Live's poll (issue 12, item 3): what one look at the document costs on Krita's main
thread, against reading the canvas it replaces. Prints JSON.

    .venv/bin/python benchmarks/krita_live.py [--size 2048] [--layers 8] [--repeat 20]

Runs itself inside real Krita (``kritarunner`` under ``xvfb-run``, a throw-away profile),
with the plugin's source modules and the plain ``sfumato`` package. One document of
``--size``² with ``--layers`` filled paint layers. ``look_idle_ms``: a poll when nothing
changed (every thumbnail from Krita's cache); ``look_stroke_ms``: a poll after a 64² stroke
into one layer (its thumbnail is made again); ``read_ms``: ``livecanvas.read`` of the whole
canvas (what a poll would cost if it compared pixels), ``ratio_*`` = read / look, in one
run. Median over ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def inside(*_args: object) -> None:
    """``kritarunner -s krita_live -f inside``: the measurement, written to $SFUMATO_BENCH_OUT."""
    from krita import Krita
    from sfumato_krita import livecanvas
    from sfumato_krita.livemodel import settings_key
    from sfumato_krita.model import Settings

    size, layers, repeat = (int(os.environ[k]) for k in ("B_SIZE", "B_LAYERS", "B_REPEAT"))
    doc = Krita.instance().createDocument(size, size, "bench", "RGBA", "U8", "", 72.0)
    doc.setBatchmode(True)
    root = doc.rootNode()
    for n in range(layers):
        node = doc.createNode(f"layer {n}", "paintlayer")
        root.addChildNode(node, None)
        node.setPixelData(bytes([n * 20 % 256, 80, 160, 255]) * (size * size), 0, 0, size, size)
    doc.refreshProjection()
    settings = Settings(mode=livecanvas.Mode.REFINE)
    key = settings_key(settings)
    livecanvas.look(doc, key)  # warm the thumbnail caches

    def timed(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1000

    idle = [timed(lambda: livecanvas.look(doc, key)) for _ in range(repeat)]
    target = root.childNodes()[-1]
    stroke = []
    for n in range(repeat):
        target.setPixelData(bytes([n, 0, 0, 255]) * (64 * 64), 100 + n, 100, 64, 64)
        stroke.append(timed(lambda: livecanvas.look(doc, key)))
    reads = [timed(lambda: livecanvas.read(doc, settings)) for _ in range(max(3, repeat // 4))]
    med = statistics.median
    out = {
        "size": size, "layers": layers, "repeat": repeat,
        "look_idle_ms": round(med(idle), 3), "look_stroke_ms": round(med(stroke), 3),
        "read_ms": round(med(reads), 1),
        "ratio_idle": round(med(reads) / med(idle), 1),
        "ratio_stroke": round(med(reads) / med(stroke), 1),
    }  # fmt: skip
    Path(os.environ["SFUMATO_BENCH_OUT"]).write_text(json.dumps(out))
    doc.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sfumato-bench-krita-"))
    try:
        env = dict(os.environ, B_SIZE=str(args.size), B_LAYERS=str(args.layers),
                   B_REPEAT=str(args.repeat), SFUMATO_BENCH_OUT=str(tmp / "out.json"))  # fmt: skip
        for name in ("CONFIG", "DATA", "CACHE"):
            (tmp / name).mkdir()
            env[f"XDG_{name}_HOME"] = str(tmp / name)
        site = sysconfig.get_paths()["purelib"]  # msgpack, websockets for the plain sfumato
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "benchmarks"), str(ROOT / "krita_plugin"), str(ROOT / "server"), site]
        )
        cmd = ["xvfb-run", "-a", "kritarunner", "-s", "krita_live", "-f", "inside"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        out = tmp / "out.json"
        if not out.is_file():
            sys.exit(f"Krita wrote no figures:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        print(json.dumps(json.loads(out.read_text()), indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
