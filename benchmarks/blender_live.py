"""The Blender live viewport (issue 12, item 4): what a camera move costs until its image is
shown, and how many jobs a drag sends. Prints JSON.

    .venv-blender/bin/python benchmarks/blender_live.py [--size 256] [--moves 8] [--burst 20]

Starts ``sfumato serve`` (tiny model, offline) from .venv, installs the add-on from the zip
users get, and drives Live's and the bridge's timers every 5 ms (the bpy module fires no
timers). Per move: ``shown_s`` from the move to the live image holding the new result;
``quiet_s`` the debounce the loop waits by design; ``passes_s`` the preview-size pass render
and job build (Blender's only busy moment); ``bare_s`` the same job sent again by a plain
Client, submit → result (inference + transport); ``added_ms`` = shown − quiet − passes − bare:
what the add-on's loop, apply and timer granularity add. Min and median over ``--moves``.
``burst_jobs``: jobs sent for ``--burst`` moves within one second (goal ≤ 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="sfumato-bench-blender-")
os.environ["HF_HUB_OFFLINE"] = "1"

import bpy

from _blender import ADDON, REPO, install_addon, module  # benchmarks/_blender.py


def start_server(folder: Path) -> tuple[str, subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != "BLENDER_USER_RESOURCES"}
    command = [str(REPO / ".venv" / "bin" / "python"), "-m", "sfumato.cli", "serve", "--port", "0",
               "--results", str(folder / "results"), "--cache", str(folder / "cache")]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Sfumato listening on "):
            return line.split()[-1], proc
    raise RuntimeError("sfumato serve did not start")


def scene(size: int) -> Any:
    bpy.ops.mesh.primitive_monkey_add(size=2.0)
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    bpy.context.scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -6.0, 0.0), (1.5708, 0.0, 0.0)
    bpy.context.scene.camera = cam
    render = bpy.context.scene.render
    render.resolution_x = render.resolution_y = size
    settings = bpy.context.scene.sfumato
    settings.prompt, settings.random_seed, settings.seed = "bronze", False, "3"
    settings.live.resolution, settings.live.steps = size, 1
    return cam


def drive(live: Any, until: Any, timeout: float = 60.0) -> None:
    tick, deadline = module("bridge").tick, time.monotonic() + timeout
    while not until():
        if error := bpy.context.window_manager.sfumato_live.error:
            raise RuntimeError(f"the live job failed: {error}")
        if time.monotonic() > deadline:
            raise TimeoutError("the live viewport did not answer")
        live.tick()
        tick()
        time.sleep(0.005)


def stats(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--moves", type=int, default=8)
    parser.add_argument("--burst", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sfumato-bench-live-"))
    url, proc = start_server(folder)
    try:
        install_addon()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.preferences.addon_enable(module=ADDON)
        bpy.context.preferences.addons[ADDON].preferences.url = url
        cam = scene(args.size)
        live, jobs = module("live"), module("jobs")
        from sfumato.client import Client

        passes: list[float] = []
        prepare = jobs.prepare_texture

        def timed_prepare(*a: Any) -> Any:
            start = time.perf_counter()
            try:
                return prepare(*a)
            finally:
                passes.append(time.perf_counter() - start)

        jobs.prepare_texture = timed_prepare
        state = bpy.context.window_manager.sfumato_live
        assert bpy.ops.sfumato.live() == {"FINISHED"}
        drive(live, lambda: state.shown == 1, timeout=180.0)  # the first one loads the model
        last: list[Any] = []
        link = module("bridge").get()
        ender = link.enders["LIVE"]
        link.enders["LIVE"] = lambda record: (last.append(record), ender(record))
        shown, bare = [], []
        bench = Client(url, None, name="bench")
        bench.connect()
        for n in range(args.moves):
            cam.location.x += 0.05
            start = time.perf_counter()
            bpy.context.view_layer.update()
            drive(live, lambda n=n: state.shown == n + 2)
            shown.append(time.perf_counter() - start)
            job = last[-1].job
            plain = type(job)(f"bench-{n}", job.task, job.params, controls=job.controls)
            t0 = time.perf_counter()
            bench.run(plain, timeout=60)
            bare.append(time.perf_counter() - t0)
        sent = state.sent
        start = time.perf_counter()
        for _ in range(args.burst):
            cam.location.z += 0.01
            bpy.context.view_layer.update()
            end = time.perf_counter() + 1.0 / args.burst
            while time.perf_counter() < end:
                live.tick()
                module("bridge").tick()
                time.sleep(0.005)
        drive(live, lambda: not live.LIVE.loop.dirty and live.LIVE.loop.current is None)
        burst_jobs = state.sent - sent
        bpy.ops.sfumato.live()
        bench.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    from sfumato.hostlive import DEBOUNCE as quiet

    per = passes[1 : 1 + args.moves]  # the first look, the moves, then the burst's
    added = [(s - quiet - p - b) * 1000 for s, p, b in zip(shown, per, bare, strict=False)]
    print(json.dumps({
        "size": args.size, "steps": 1, "moves": args.moves, "blender": bpy.app.version_string,
        "machine": platform.machine(), "load": round(os.getloadavg()[0], 1),
        "shown_s": stats(shown), "quiet_s": quiet, "passes_s": stats(per), "bare_s": stats(bare),
        "added_ms": stats(added), "burst_moves": args.burst, "burst_jobs": burst_jobs,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
