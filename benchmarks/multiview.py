"""The multiview task's server half (issue 11, item 5): per view, resample the texture into the
view + project the view into UV space + blend, vectorised. Prints JSON.

    .venv/bin/python benchmarks/multiview.py [--views 8] [--size 512] [--texture 2048]

The scene is the analytic sphere of ``sfumato.engine.multiview_scene`` (every texel on its
islands, so every texel is projected in every view): 8 cameras on a ring around it at 512²,
a 2048² texture. Each view's picture is its position paint, made before the clock starts (it
stands in for the model's image; painting is not what is measured). ``ms`` per view is
``bake_views``' work for that view: init and mask, the composite, the projection and blend
(wall clock; ``cpu_ms`` the process's CPU time, which a machine shared with other work
inflates less: numpy runs these on one core).
``rss_mib`` is the resident set after the view and ``peak_mib`` the process's peak so far:
the goal is ≤ 150 ms per view and no growth in memory over the views.

The Blender half (passes per view against the bare Cycles render) is the Blender lane's,
in its own script.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from sfumato.engine.multiview import position_colours
from sfumato.engine.multiview_bake import Bake, ViewGeometry, bake_views
from sfumato.engine.multiview_scene import render, sphere_maps


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--texture", type=int, default=2048)
    args = parser.parse_args()
    size = (args.size, args.size)
    angles = np.linspace(0, 2 * np.pi, args.views, endpoint=False)
    eyes = [(4 * np.cos(a), 4 * np.sin(a), 1.5 * np.sin(3 * a)) for a in angles]
    passes = [render(e, size) for e in eyes]
    position, normal, texels = sphere_maps(args.texture)
    bake = Bake(position, normal, texels)
    lo, hi = bake.bounds()
    pictures = [position_colours(p.camera, p.depth, lo, hi) for p in passes]
    views = [ViewGeometry(p.camera, p.depth, p.uv, p.mask) for p in passes]
    del passes
    per_view: list[dict[str, float]] = []
    clock = [time.perf_counter(), time.process_time()]

    def after(n: int, stats: object) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        per_view.append(
            {
                "view": n + 1,
                "ms": round((now - clock[0]) * 1000, 1),
                "cpu_ms": round((cpu - clock[1]) * 1000, 1),
                "rss_mib": round(rss_mib(), 1),
                "peak_mib": round(peak_mib(), 1),
            }
        )
        clock[:] = [time.perf_counter(), time.process_time()]

    before = rss_mib()
    clock[:] = [time.perf_counter(), time.process_time()]
    bake_views(bake, views, lambda n, init, mask: pictures[n], after)
    ms = [v["ms"] for v in per_view]
    cpu_ms = [v["cpu_ms"] for v in per_view]
    print(
        json.dumps(
            {
                "views": args.views,
                "view_size": args.size,
                "texture": args.texture,
                "rss_before_mib": round(before, 1),
                "per_view": per_view,
                "ms_median": float(np.median(ms)),
                "ms_max": max(ms),
                "cpu_ms_median": float(np.median(cpu_ms)),
                "cpu_ms_max": max(cpu_ms),
                "rss_growth_after_view_2_mib": round(
                    per_view[-1]["rss_mib"] - per_view[min(1, len(per_view) - 1)]["rss_mib"], 1
                ),
                "covered": round(bake.covered(), 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
