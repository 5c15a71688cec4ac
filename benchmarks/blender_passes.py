"""What the add-on adds on top of Cycles when it extracts depth + normal passes, and how long
writing a result back takes. Prints JSON.

    .venv-blender/bin/python benchmarks/blender_passes.py [--sizes 512 1024] [--repeat 3]

``bare_s``: Cycles rendering the same passes with the same settings, nothing written.
``passes_s``: the add-on's ``passcapture.render_passes`` (Texture from View, Camera Backdrop,
the live viewport) — the same render under the add-on's capture engine, the passes copied out of
the render result and the camera-space conversion. ``exr_s``: the same passes through the
multi-layer EXR (the fallback where Cycles' engine class cannot be found). ``ratio`` = passes / bare (goal
≤ 1.1). ``write_back_s``: a result image into a packed Blender image, camera-projection UVs
(the projection modifier, see blender_addon/projection.py) for the scene's meshes, and a material per mesh. Bare and passes runs alternate after one
warm-up each; min and median over ``--repeat`` runs (on a shared machine the min is the
figure to trust). Runs offline, without a server.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sfumato-bench-blender-")

import bpy
import numpy as np

from _blender import install_addon, module  # benchmarks/_blender.py

install_addon()
passes, capture, scene = module("passes"), module("passcapture"), module("scene")
geometry = module("geometry")
uv_projection = module("projection")


def build_scene() -> tuple[object, list[object]]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=64, y_subdivisions=64, size=12)
    bpy.ops.mesh.primitive_monkey_add(size=1.6, location=(0, 0, 1.1))
    bpy.ops.object.modifier_add(type="SUBSURF")
    bpy.ops.object.modifier_apply(modifier="Subdivision")
    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(2.2, 1.0, 0.6))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(-2.1, 0.6, 0.7))
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -7.5, 4.2), (math.radians(64), 0.0, 0.0)
    bpy.context.scene.camera = cam
    bpy.context.view_layer.update()
    return cam, [o for o in bpy.context.scene.objects if o.type == "MESH"]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(runs: list[Callable[[], object]], repeat: int) -> list[list[float]]:
    """Run each of ``runs`` in turn (after one warm-up each: kernels, BVH), so that load from
    other processes on a shared machine falls on all alike."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, seen in zip(runs, times, strict=True):
            seen.append(timed(run))
    return times


def spread(times: list[float]) -> dict[str, float]:
    return {"min": round(min(times), 4), "median": round(statistics.median(times), 4)}


def measure(size: int, repeat: int) -> dict[str, object]:
    cam, meshes = build_scene()
    s, layer = bpy.context.scene, bpy.context.view_layer
    folder = Path(tempfile.mkdtemp())

    def bare() -> None:
        with passes.pass_settings(s, cam, layer, size, size, folder / "unused.exr"):
            bpy.ops.render.render(write_still=False, scene=s.name, layer=layer.name)

    def extract() -> None:
        capture.render_passes(s, cam, layer, size, size)

    def through_exr() -> None:
        passes.passes_of(passes.render_layers(s, cam, layer, size, size), cam)

    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    depsgraph = bpy.context.evaluated_depsgraph_get()

    def write_back() -> None:
        image = scene.new_image("bench", pixels, {"job_id": "bench"})
        to_camera, projection = scene.camera_matrices(cam, depsgraph, size, size)
        for obj in meshes:
            rows = geometry.projection_rows(to_camera, projection, np.array(obj.matrix_world))
            uv_projection.project(obj, "bench", rows)
            scene.assign_material(obj, scene.texture_material("bench", image, "bench"))

    bare_t, passes_t, exr_t = interleaved([bare, extract, through_exr], repeat)
    write_back()
    back_t = [timed(write_back) for _ in range(repeat)]
    return {
        "size": size,
        "bare_s": spread(bare_t),
        "passes_s": spread(passes_t),
        "exr_s": spread(exr_t),
        "ratio_min": round(min(passes_t) / min(bare_t), 3),
        "ratio_median": round(statistics.median(passes_t) / statistics.median(bare_t), 3),
        "exr_ratio_median": round(statistics.median(exr_t) / statistics.median(bare_t), 3),
        "write_back_s": spread(back_t),
        "vertices": sum(len(o.data.vertices) for o in meshes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = [measure(size, args.repeat) for size in args.sizes]
    print(
        json.dumps(
            {
                "benchmark": "blender_passes",
                "blender": bpy.app.version_string,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "repeat": args.repeat,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
