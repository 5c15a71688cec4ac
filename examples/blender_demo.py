"""Blender, headless: build a small scene, texture it from the camera through the Sfumato
add-on, render a PNG.

    .venv-blender/bin/python examples/blender_demo.py --url ws://127.0.0.1:8746 --out out/

Needs a running server (``sfumato serve``). It installs the extension zip exactly as a user
would (built with ``sfumato package blender``) into a throw-away Blender user folder, runs
``sfumato.texture_from_view`` with ``wait=True`` (the bpy module has no timers) and renders
with Cycles on the CPU. On the built-in tiny model the texture is noise: the demo shows the
plumbing (depth + normals out, image back, camera-projected UVs), not a model.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

USER = tempfile.mkdtemp(prefix="sfumato-demo-blender-")
os.environ["BLENDER_USER_RESOURCES"] = USER  # before bpy: never touch a real Blender setup

import bpy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ADDON = "bl_ext.user_default.sfumato"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("SFUMATO_URL", "ws://127.0.0.1:8746"))
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG and .blend")
    parser.add_argument("--prompt", default="old painted wood and brass, studio photo")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="longest side of the texture")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        install_addon(args.out)
        build_scene()
        return texture_and_render(args)
    finally:
        shutil.rmtree(USER, ignore_errors=True)


def install_addon(out: Path) -> None:
    sys.path.insert(0, str(REPO / "server"))
    from sfumato.packaging.blender import build_blender

    bpy.ops.wm.read_factory_settings(use_empty=True)
    zip_path = build_blender(out / "dist")
    # from here on, sfumato is the copy the extension bundles, as in a user's Blender
    sys.path.remove(str(REPO / "server"))
    for name in [n for n in sys.modules if n == "sfumato" or n.startswith("sfumato.")]:
        del sys.modules[name]
    bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    print(f"installed {zip_path.name} into Blender {bpy.app.version_string}")


def build_scene() -> None:
    """A floor, three objects and a camera that sees them from above and in front."""
    scene = bpy.context.scene
    # UVs are per vertex and interpolate linearly, a projection does not: big faces seen at a
    # slant need vertices to follow it, so the floor is a fine grid, not one quad.
    bpy.ops.mesh.primitive_grid_add(x_subdivisions=48, y_subdivisions=48, size=12)
    bpy.ops.mesh.primitive_monkey_add(size=1.6, location=(0, 0, 1.1), rotation=(0.3, 0, 0.4))
    bpy.ops.object.shade_smooth()
    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(2.2, 1.0, 0.6), rotation=(0, 0, 0.5))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(-2.1, 0.6, 0.7))
    bpy.ops.object.shade_smooth()
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -7.5, 4.2)
    camera.rotation_euler = (math.radians(64), 0.0, 0.0)
    scene.camera = camera
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("World")
    if bpy.app.version < (5, 0, 0):  # node trees are always on in 5.0
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
    scene.world = world
    scene.render.resolution_x, scene.render.resolution_y = 768, 432
    scene.render.resolution_percentage = 100


def texture_and_render(args: argparse.Namespace) -> int:
    scene = bpy.context.scene
    bpy.context.preferences.addons[ADDON].preferences.url = args.url
    settings = scene.sfumato
    settings.prompt, settings.steps, settings.resolution = args.prompt, args.steps, args.size
    settings.random_seed, settings.seed = False, "7"  # text: seeds go up to 2**32 − 1
    for obj in scene.objects:
        obj.select_set(obj.type == "MESH")
    started = time.monotonic()
    try:
        bpy.ops.sfumato.texture_from_view(wait=True)
    except RuntimeError as exc:  # the operator's report: what went wrong and the fix
        print(f"texture from view failed: {exc}", file=sys.stderr)
        return 1
    entry = settings.history[-1]
    print(
        f"textured {len(entry.targets)} objects with a {entry.image.size[0]}×"
        f"{entry.image.size[1]} image from {entry.model} (seed {entry.seed}, job "
        f"{entry.job_id}) in {time.monotonic() - started:.1f} s"
    )
    runtime = bpy.context.window_manager.sfumato  # the connection's state, never saved
    if runtime.notice:
        print(runtime.notice)
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples = "CPU", 16
    scene.cycles.use_denoising = False
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str((args.out / "blender-demo.png").resolve())
    bpy.ops.render.render(write_still=True)
    bpy.ops.wm.save_as_mainfile(filepath=str((args.out / "blender-demo.blend").resolve()))
    print(f"wrote {scene.render.filepath} and blender-demo.blend")
    return 0


if __name__ == "__main__":
    sys.exit(main())
