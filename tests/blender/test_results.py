"""Applying results (issue 9, items 2, 3 and 10), through the bridge as the timer does it, with
results made here instead of by a server: any seed the protocol allows, failures injected at
any step, and the history's Restore Previous and Apply Again for every kind of result.

Jobs are prepared by the add-on's own ``jobs.prepare_*`` (passes rendered for real), so what
is applied is what the actions send; only the server's answer is made up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from . import scenes
from .conftest import runtime, submodule, track

SEED_MAX = 2**32 - 1
seeds = st.integers(0, SEED_MAX)
KINDS = ("TEXTURE", "WORLD", "BACKDROP", "INPAINT", "SEAMLESS")
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def welcome() -> Any:
    from sfumato.protocol import Welcome

    caps = ("generate", "inpaint", "control", "tile", "preview")
    return Welcome("0.1", 1, caps, client_id="test")


def fresh_file() -> Any:
    """An empty file (the add-on stays enabled) with tiny settings."""
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution, s.random_seed = "moss", 2, 64, False
    return s


def prepare(kind: str) -> Any:
    """The job an action would send, from a small scene made for it."""
    jobs, s = submodule("jobs"), bpy.context.scene.sfumato
    if kind in {"TEXTURE", "BACKDROP"}:
        scenes.camera(width=64, height=64)
    if kind in {"TEXTURE", "SEAMLESS"}:
        box = scenes.cube()
        box.data.materials.append(bpy.data.materials.new("Clay"))
        scenes.select(box)
    if kind == "INPAINT":
        plane, _ = scenes.textured_plane(64, 64)
        scenes.select(plane)
    return jobs.PREPARE[kind](bpy.context, s, welcome())


def answer(pending: Any, seed: int) -> Any:
    """The server's result for ``pending``: noise of the size it asked for."""
    from sfumato.protocol import Array, Result

    p = pending.job.params
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (p.height, p.width, 3), dtype=np.uint8)
    return Result(pending.job.id, pending.job.task, (Array.from_numpy(pixels),), (seed,), "tiny-sd")


def send(pending: Any, result: Any) -> Any:
    """Hand the bridge a job and its result, as the timer would, and tick once."""
    bridge = submodule("bridge")
    link = track(pending)
    link.handle(result)
    assert isinstance(bridge.tick(), float)  # the timer keeps running, whatever happened
    return bpy.context.scene.sfumato


# ------------------------------------------------------------------------------ item 2: seeds


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(seeds)
@example(0)
@example(2**31 - 1)
@example(2**31)
@example(SEED_MAX)
def test_the_seed_field_holds_every_protocol_seed(addon: Any, seed: int) -> None:
    jobs, s = submodule("jobs"), bpy.context.scene.sfumato
    s.seed = str(seed)
    assert jobs.parse_seed(s.seed) == seed
    s.random_seed = False
    assert jobs.params(s, welcome(), width=64, height=64).seed == seed


@pytest.mark.parametrize("text", ["-1", "4294967296", "12a", "", "1.5", "٣"])
def test_a_seed_that_is_not_one_says_what_to_type(addon: Any, text: str) -> None:
    jobs, s = submodule("jobs"), bpy.context.scene.sfumato
    s.seed, s.random_seed = text, False
    with pytest.raises(jobs.UserError, match=r"whole number from 0 to 4294967295.*Random Seed"):
        jobs.params(s, welcome(), width=64, height=64)


@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURES)
@given(st.lists(seeds, min_size=1, max_size=6))
@example([0, 2**31 - 1, 2**31, SEED_MAX])
def test_seeds_survive_history_provenance_and_a_saved_file(
    addon: Any, tmp_path_factory: pytest.TempPathFactory, chosen: list[int]
) -> None:
    """Every result's seed, in the history and in the image's provenance, and the Seed field
    itself, read back the same after saving the .blend and opening it again."""
    s = fresh_file()
    for seed in chosen:
        pending = prepare("WORLD")
        s = send(pending, answer(pending, seed))
        assert runtime().error == "", runtime().error
        assert runtime().status.endswith(f"(seed {seed})")
    s.seed = str(chosen[-1])
    path = tmp_path_factory.mktemp("blend") / "seeds.blend"
    assert bpy.ops.wm.save_as_mainfile(filepath=str(path)) == {"FINISHED"}
    assert bpy.ops.wm.open_mainfile(filepath=str(path)) == {"FINISHED"}
    s = bpy.context.scene.sfumato
    assert [entry.seed for entry in s.history] == [str(seed) for seed in chosen]
    assert [entry.image["sfumato"]["seed"] for entry in s.history] == [str(x) for x in chosen]
    assert submodule("jobs").parse_seed(s.seed) == chosen[-1]
    assert Path(bpy.data.filepath) == path


# ------------------------------------------------------------------------------ item 3: failures


class Injected(Exception):
    """A failure no one foresaw (not one of the errors the add-on used to catch)."""


# Where applying can fail: functions the apply path calls, in the add-on's modules.
POINTS = [
    ("scene", "new_image"),
    ("scene", "texture_material"),
    ("scene", "assign_material"),
    ("scene", "set_world_environment"),
    ("scene", "camera_backdrop"),
    ("projection", "project"),
    ("results", "_record"),
    ("scene", "backdrop_distance"),
]
ERRORS = [Injected, ZeroDivisionError, KeyError, TypeError, AttributeError, OverflowError]


def state() -> dict[str, Any]:
    """What a failed apply must leave as it found: every datablock, and what points at what."""

    def name(block: Any) -> str | None:
        return None if block is None else block.name

    out: dict[str, Any] = {
        kind: sorted(b.name for b in getattr(bpy.data, kind))
        for kind in ("objects", "meshes", "materials", "worlds", "images", "node_groups")
    }
    out["slots"] = {o.name: [name(s.material) for s in o.material_slots] for o in bpy.data.objects}
    out["modifiers"] = {o.name: [m.name for m in o.modifiers] for o in bpy.data.objects}
    out["uv"] = {
        m.name: (
            [x.name for x in m.uv_layers],
            name(m.uv_layers.active),
            [x.name for x in m.uv_layers if x.active_render],
        )
        for m in bpy.data.meshes
    }
    out["textures"] = {
        m.name: [name(n.image) for n in m.node_tree.nodes if n.type == "TEX_IMAGE"]
        for m in bpy.data.materials
        if m.node_tree is not None
    }
    out["cameras"] = {
        c.name: (c.show_background_images, [name(b.image) for b in c.background_images])
        for c in bpy.data.cameras
    }
    out["world"] = name(bpy.context.scene.world)
    out["world links"] = {
        w.name: sorted((link.from_node.name, link.to_node.name) for link in w.node_tree.links)
        for w in bpy.data.worlds
        if w.node_tree is not None
    }
    s = bpy.context.scene.sfumato
    out["history"] = (len(s.history), s.history_index)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(
    kind=st.sampled_from(KINDS),
    point=st.sampled_from(POINTS),
    after=st.booleans(),
    error=st.sampled_from(ERRORS),
    earlier=st.booleans(),
)
@example(kind="TEXTURE", point=("projection", "project"), after=True, error=Injected, earlier=True)
@example(
    kind="BACKDROP", point=("scene", "camera_backdrop"), after=True, error=KeyError, earlier=True
)
@example(
    kind="WORLD",
    point=("scene", "set_world_environment"),
    after=True,
    error=TypeError,
    earlier=False,
)
@example(
    kind="INPAINT", point=("scene", "new_image"), after=True, error=OverflowError, earlier=False
)
@example(
    kind="SEAMLESS", point=("results", "_record"), after=True, error=AttributeError, earlier=True
)
def test_a_failure_anywhere_in_apply_is_contained(
    addon: Any, kind: str, point: tuple[str, str], after: bool, error: type,
    earlier: bool,
) -> None:  # fmt: skip
    """Whatever step fails, with whatever exception: the job ends with a message, the panel
    is free, the timer keeps running, and the file is as it was before the result came (an
    earlier result of the same kind, when there is one, stays as it was too)."""
    fresh_file()
    pending = prepare(kind)
    if earlier:  # a result already there, which the failed one must not disturb
        send(pending, answer(pending, 1))
        assert runtime().error == "", runtime().error
        pending = dataclasses.replace(pending, job=dataclasses.replace(pending.job, id="again"))
    before = state()
    with pytest.MonkeyPatch.context() as patch:
        calls: list[str] = []
        owner = submodule(point[0])
        real = getattr(owner, point[1])

        def failing(*args: Any, **kwargs: Any) -> Any:
            calls.append(point[1])
            if after:
                real(*args, **kwargs)
            raise error(f"injected into {point[1]}")

        patch.setattr(owner, point[1], failing)
        send(pending, answer(pending, 2))
    link = submodule("bridge").get()
    assert not runtime().busy and link.pending == {}
    assert bpy.ops.sfumato.world_background.poll()  # every action is available again
    if not calls:  # this kind of result never goes through that step: it simply applied
        assert runtime().error == "" and "applied" in runtime().status, (
            runtime().error,
            runtime().status,
        )
        return
    assert runtime().error.startswith(f"could not apply the result of job {pending.job.id}: "), (
        runtime().error
    )
    assert "injected" in runtime().error
    assert state() == before


def test_the_timer_survives_a_bug_outside_apply(
    addon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blender unregisters a timer function that raises; tick() must never raise."""
    bridge = submodule("bridge")
    fresh_file()

    def broken(event: object) -> None:
        raise ZeroDivisionError("a bug")

    link = bridge.get()
    monkeypatch.setattr(link, "_sync", lambda: broken(None))
    assert isinstance(bridge.tick(), float)
    assert "unexpected error" in runtime().error and "report it" in runtime().error


def test_a_mesh_in_edit_mode_gets_its_texture_or_a_message(addon: Any) -> None:
    """Texture from View whose result arrives while the mesh is in Edit Mode (issue 9's case:
    foreach_set length mismatch, and the panel stuck): applied, or refused cleanly."""
    fresh_file()
    pending = prepare("TEXTURE")
    box = bpy.context.active_object
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        before = state()
        send(pending, answer(pending, 3))
        assert not runtime().busy
        if runtime().error:
            assert state() == before
        else:
            assert box.material_slots[0].material.name.startswith("Sfumato")
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


def test_a_mesh_with_eight_uv_maps_gets_its_texture_or_a_message(addon: Any) -> None:
    """Blender allows 8 UV maps per mesh (the 8th camera projection used to fail with
    'NoneType' object has no attribute 'uv' and leave the panel stuck)."""
    fresh_file()
    pending = prepare("TEXTURE")
    box = bpy.context.active_object
    while len(box.data.uv_layers) < 8:
        box.data.uv_layers.new(name=f"Sfumato Cam{len(box.data.uv_layers)}")
    before = state()
    send(pending, answer(pending, 4))
    assert not runtime().busy
    if runtime().error:
        assert "UV map" in runtime().error and state() == before
    else:
        assert box.material_slots[0].material.name.startswith("Sfumato")
        assert len(box.data.uv_layers) <= 8


# ------------------------------------------------------------------------------ item 10: history


def test_restore_a_texture_puts_back_materials_and_uv_maps(addon: Any) -> None:
    s = fresh_file()
    pending = prepare("TEXTURE")
    box = bpy.context.active_object
    box.data.uv_layers.new(name="Second")
    box.data.uv_layers["Second"].active_render = True
    box.data.uv_layers.active = box.data.uv_layers["UVMap"]
    s = send(pending, answer(pending, 5))
    assert runtime().error == "", runtime().error
    image = s.history[-1].image
    assert box.material_slots[0].material.node_tree.nodes["Sfumato Texture"].image is image
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert box.material_slots[0].material.name == "Clay"
    layers = box.data.uv_layers
    assert layers.active.name == "UVMap" and layers["Second"].active_render
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert box.material_slots[0].material.node_tree.nodes["Sfumato Texture"].image is image


def sky_world() -> Any:
    """A user's world: a Sky Texture into the Background."""
    world = bpy.data.worlds.new("Sky")
    scene_io = submodule("scene")
    scene_io.use_nodes(world)
    nodes, links = world.node_tree.nodes, world.node_tree.links
    sky = nodes.new("ShaderNodeTexSky")
    background = next((n for n in nodes if n.type == "BACKGROUND"), None) or nodes.new(
        "ShaderNodeBackground"
    )
    output = next((n for n in nodes if n.type == "OUTPUT_WORLD"), None) or nodes.new(
        "ShaderNodeOutputWorld"
    )
    links.new(sky.outputs["Color"], background.inputs["Color"])
    links.new(background.outputs["Background"], output.inputs["Surface"])
    bpy.context.scene.world = world
    return world


def world_links(world: Any) -> list[tuple[str, str]]:
    return sorted((link.from_node.type, link.to_node.type) for link in world.node_tree.links)


def test_restore_a_world_puts_the_users_sky_back(addon: Any) -> None:
    s = fresh_file()
    sky = sky_world()
    links = world_links(sky)
    pending = prepare("WORLD")
    s = send(pending, answer(pending, 6))
    assert runtime().error == "", runtime().error
    image = s.history[-1].image
    shown = bpy.context.scene.world
    assert shown is not sky and any(
        n.type == "TEX_ENVIRONMENT" and n.image is image for n in shown.node_tree.nodes
    )
    assert world_links(sky) == links  # the user's own world was never touched
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert bpy.context.scene.world is sky and world_links(sky) == links
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert bpy.context.scene.world is shown


def test_restore_a_world_where_there_was_none(addon: Any) -> None:
    fresh_file()
    bpy.context.scene.world = None
    pending = prepare("WORLD")
    send(pending, answer(pending, 7))
    assert bpy.context.scene.world is not None
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert bpy.context.scene.world is None


def test_restore_a_world_an_older_add_on_applied_says_it_cannot(addon: Any) -> None:
    s = fresh_file()
    entry = s.history.add()
    entry.name, entry.kind = "old", "WORLD"
    entry.image = bpy.data.images.new("old", 8, 8)
    with pytest.raises(RuntimeError, match=r"older Sfumato add-on.*nothing to restore"):
        bpy.ops.sfumato.restore()


def test_restore_a_backdrop_goes_back_one_backdrop(addon: Any) -> None:
    s = fresh_file()
    first = prepare("BACKDROP")
    cam = bpy.context.scene.camera
    assert not cam.data.show_background_images
    s = send(first, answer(first, 8))
    image_a = s.history[-1].image
    second = submodule("jobs").prepare_backdrop(bpy.context, s, welcome())
    s = send(second, answer(second, 9))
    assert runtime().error == "", runtime().error
    image_b = s.history[-1].image
    plane_name = f"Sfumato Backdrop {cam.name}"

    def shown() -> tuple[Any, Any]:
        plane = bpy.data.objects.get(plane_name)
        material = plane.material_slots[0].material if plane is not None else None
        on_plane = material.node_tree.nodes["Sfumato Texture"].image if material else None
        ours = [b.image for b in cam.data.background_images if b.image is not None]
        return on_plane, ours

    assert shown() == (image_b, [image_b])
    assert len([o for o in bpy.data.objects if o.name.startswith(plane_name)]) == 1
    assert bpy.ops.sfumato.restore() == {"FINISHED"}  # the second: back to the first
    assert shown() == (image_a, [image_a])
    s.history_index = 0
    assert bpy.ops.sfumato.restore() == {"FINISHED"}  # the first: back to none
    assert shown() == (None, []) and not cam.data.show_background_images
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert shown() == (image_a, [image_a])


def test_apply_again_after_restoring_an_inpaint(addon: Any) -> None:
    s = fresh_file()
    pending = prepare("INPAINT")
    plane = bpy.context.active_object
    node = plane.material_slots[0].material.node_tree.nodes["Image Texture"]
    painted = node.image
    s = send(pending, answer(pending, 10))
    assert runtime().error == "", runtime().error
    inpainted = s.history[-1].image
    assert node.image is inpainted
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert node.image is painted
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert node.image is inpainted
    assert bpy.ops.sfumato.restore() == {"FINISHED"}
    assert node.image is painted
    material = plane.material_slots[0].material
    plane.material_slots[0].material = bpy.data.materials.new("Other")  # e.g. a Restore
    assert bpy.ops.sfumato.apply_result() == {"FINISHED"}
    assert plane.material_slots[0].material is material and node.image is inpainted


# ------------------------------------------------------------------------------ with a server


@pytest.fixture
def served(connected: Any) -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution = "moss", 2, 64
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    return s


@pytest.mark.slow
def test_the_largest_seed_and_random_seeds_through_a_real_server(served: Any) -> None:
    """The default path (Random Seed: the server picks up to 2**32 − 1) failed about half the
    time with OverflowError; the largest seed, fixed, and random ones are applied and kept."""
    served.random_seed, served.seed = False, str(SEED_MAX)
    assert bpy.ops.sfumato.seamless_material.poll()
    scenes.select(scenes.cube())
    assert bpy.ops.sfumato.seamless_material(wait=True) == {"FINISHED"}
    entry = served.history[-1]
    assert entry.seed == str(SEED_MAX) and entry.image["sfumato"]["seed"] == str(SEED_MAX)
    assert runtime().status.endswith(f"(seed {SEED_MAX})")
    served.random_seed = True
    for _ in range(3):
        assert bpy.ops.sfumato.seamless_material(wait=True) == {"FINISHED"}
        entry = served.history[-1]
        assert 0 <= int(entry.seed) <= SEED_MAX
        assert entry.image["sfumato"]["seed"] == entry.seed
        assert runtime().status.endswith(f"(seed {entry.seed})") and not runtime().busy


def sfumato_data() -> set[str]:
    return {
        b.name
        for kind in ("images", "materials", "worlds", "objects")
        for b in getattr(bpy.data, kind)
        if b.name.startswith("Sfumato") and b.name != "Sfumato Preview"
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["edit-mode", "eight-uv-maps"])
def test_texture_from_view_on_a_hard_mesh_through_a_real_server(served: Any, case: str) -> None:
    """Issue 9's cases: started in Edit Mode, and a mesh already holding Blender's limit of 8
    UV maps. Each either gets its texture, or fails with a message and leaves nothing behind;
    the panel is free either way."""
    scenes.camera(width=64, height=64)
    box = scenes.cube()
    scenes.select(box)
    while case == "eight-uv-maps" and len(box.data.uv_layers) < 8:
        box.data.uv_layers.new(name=f"Sfumato Cam{len(box.data.uv_layers)}")
    if case == "edit-mode":
        bpy.ops.object.mode_set(mode="EDIT")
    before = sfumato_data()
    try:
        outcome = bpy.ops.sfumato.texture_from_view(wait=True)
    except RuntimeError as exc:  # the operator reported an error
        assert runtime().error and str(runtime().error) in str(exc)
        assert sfumato_data() == before and len(served.history) == 0
    else:
        assert outcome == {"FINISHED"}, runtime().error
        assert box.material_slots[0].material.name.startswith("Sfumato")
        assert served.history[-1].image is not None
    finally:
        if box.mode == "EDIT":
            bpy.ops.object.mode_set(mode="OBJECT")
    assert not runtime().busy and submodule("bridge").get().pending == {}
    assert bpy.ops.sfumato.texture_from_view.poll()
