"""Texture Object, the Blender half (issue 11, item 5): what the add-on adds on top of Cycles
when it renders one texture camera's passes — depth, normal, UV and the target's object
mask — and what the UV bake costs. Prints JSON. The server half is benchmarks/multiview.py.

    .venv-blender/bin/python benchmarks/multiview_blender.py [--views 8] [--size 512]
        [--texture 2048] [--repeat 3]

``bare_s``: Cycles rendering the same four passes with the same settings, nothing written,
per view. ``view_s``: the add-on's ``texbake.view_passes`` per view — the same render, run
by ``passcapture``'s engine (Cycles under another name) that copies the passes out of the
render result, then the camera-space normals, the mask, and the UV map made render-active
and the pass index set and put back. ``ratio`` = view / bare (goal ≤ 1.2). ``exr_s``: the
same ``view_passes`` on its fallback path (where Cycles' engine class is not found), the
render written to a multi-layer EXR and read back: what the add-on did before capture.
Bare, add-on and EXR runs alternate over the views after one warm-up each; min and median
over ``--repeat`` rounds of all views. ``bake_s``: the position + normal bake at ``--texture``²
(once per job). ``cameras_s``: greedy placement (256 candidate views rasterised in numpy, 8000 surface samples). Runs offline,
without a server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sfumato-bench-blender-")

import bpy

from _blender import ADDON, install_addon, module  # benchmarks/_blender.py


def build_scene() -> Any:
    """Suzanne, subdivided (~8k faces), with a cube beside her: what a textured prop is."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.preferences.addon_enable(module=ADDON)
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    monkey = bpy.context.active_object
    bpy.ops.object.modifier_add(type="SUBSURF")
    bpy.ops.object.modifier_apply(modifier="Subdivision")
    bpy.ops.mesh.primitive_cube_add(size=0.8, location=(1.8, -1.2, 0.0))
    bpy.context.view_layer.objects.active = monkey
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == monkey)
    return monkey


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def stats(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4)}


def measure(views: int, size: int, texture: int, repeat: int) -> dict[str, object]:
    texbake, texcams, passes = module("texbake"), module("texcams"), module("passes")
    capture = module("passcapture")
    monkey = build_scene()
    s, layer = bpy.context.scene, bpy.context.view_layer
    cameras_s = timed(
        lambda: texcams.place(bpy.context, [monkey], "GREEDY", target=1.0, budget=views)
    )
    placed = texcams.place(bpy.context, [monkey], "SPHERE", count=views)
    cams = list(placed.cameras)
    folder = Path(tempfile.mkdtemp())
    extra = [(layer, "use_pass_uv", True), (layer, "use_pass_object_index", True)]

    def bare(cam: Any) -> None:
        with passes.pass_settings(s, cam, layer, size, size, folder / "unused.exr", extra):
            bpy.ops.render.render(write_still=False, scene=s.name, layer=layer.name)

    def add_on(cam: Any) -> None:
        texbake.view_passes(s, cam, layer, monkey, "UVMap", size, size)

    def through_exr(cam: Any) -> None:
        engine_class = capture._engine_class
        capture._engine_class = lambda: None  # as where Cycles' class is not found
        try:
            add_on(cam)
        finally:
            capture._engine_class = engine_class

    bare(cams[0]), add_on(cams[0]), through_exr(cams[0])  # warm-up: kernels, BVH
    bare_t: list[float] = []
    view_t: list[float] = []
    exr_t: list[float] = []
    for _ in range(repeat):
        for cam in cams:
            bare_t.append(timed(lambda cam=cam: bare(cam)))
            view_t.append(timed(lambda cam=cam: add_on(cam)))
            exr_t.append(timed(lambda cam=cam: through_exr(cam)))
    bake_t = [timed(lambda: texbake.bake_maps(s, monkey, "UVMap", texture)) for _ in range(2)]
    return {
        "views": views,
        "size": size,
        "texture": texture,
        "faces": len(monkey.data.polygons),
        "bare_s": stats(bare_t),
        "view_s": stats(view_t),
        "ratio_min": round(min(view_t) / min(bare_t), 3),
        "ratio_median": round(statistics.median(view_t) / statistics.median(bare_t), 3),
        "per_job_passes_s": round(statistics.median(view_t) * views, 3),
        "exr_s": stats(exr_t),
        "exr_ratio_min": round(min(exr_t) / min(bare_t), 3),
        "exr_ratio_median": round(statistics.median(exr_t) / statistics.median(bare_t), 3),
        "bake_s": stats(bake_t),
        "cameras_s": round(cameras_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--texture", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    install_addon()
    result = measure(args.views, args.size, args.texture, args.repeat)
    print(
        json.dumps(
            {
                "benchmark": "multiview_blender",
                "blender": bpy.app.version_string,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "load": round(os.getloadavg()[0], 2),
                "repeat": args.repeat,
                "result": result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
