"""Per-object prompts and the reference picture (issue 16.4), in real bpy against the real
server: the regions Texture from View sends are the objects' silhouettes in the view, the
user's pass indices survive, and World Background carries the reference picture."""

from __future__ import annotations

import dataclasses
from typing import Any

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view

from . import scenes
from .conftest import runtime, submodule


@pytest.fixture
def offer(connected: Any) -> Any:
    s = bpy.context.scene.sfumato
    s.prompt, s.steps, s.resolution = "a workshop", 2, 128
    s.random_seed, s.seed = False, "7"
    assert bpy.ops.sfumato.connect(wait=True) == {"FINISHED"}
    got = submodule("bridge").get().link.session.offer
    assert {"regions", "reference", "control"} <= set(got.capabilities), got.capabilities
    return got


def _turn(o: tuple, a: tuple, b: tuple) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain), counter-clockwise."""
    pts = sorted(map(tuple, points))

    def half(seq: list) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2 and _turn(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    return np.array(half(pts)[:-1] + half(pts[::-1])[:-1])


def footprint(obj: Any, cam: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The cube's silhouette at pixel centres (row 0 at the top) from its projected corners,
    and the pixels within a pixel of its outline (where a sample may fall either way)."""
    scene = bpy.context.scene
    corners = [world_to_camera_view(scene, cam, obj.matrix_world @ v.co) for v in obj.data.vertices]
    hull = _hull(np.array([(c.x * width, (1.0 - c.y) * height) for c in corners]))
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    # signed distance to each edge of the hull (counter-clockwise in x-right, y-down space)
    dist = np.full((height, width), np.inf)
    for a, b in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        edge = b - a
        d = (edge[0] * (ys - a[1]) - edge[1] * (xs - a[0])) / np.hypot(*edge)
        dist = np.minimum(dist, d)
    inside = dist > 0
    return inside, np.abs(dist) < 1.0


def test_objects_own_prompts_are_regions_of_their_silhouettes(offer: Any) -> None:
    jobs = submodule("jobs")
    cam = scenes.camera(width=128, height=64)
    lamp, table = scenes.cube((1.6, 0.0, 0.0), 1.5), scenes.cube((-1.6, 0.0, 0.0))
    plain = scenes.cube((0.0, 0.0, 3.5), 0.5)  # selected, no prompt of its own: no region
    lamp.sfumato_prompt.prompt, lamp.sfumato_prompt.negative = "a brass lamp", "rust"
    table.sfumato_prompt.prompt = "a walnut table"
    lamp.pass_index, table.pass_index, plain.pass_index = 7, 3, 5
    scenes.select(table, plain, lamp)
    settings = bpy.context.scene.sfumato

    pending = jobs.prepare_texture(bpy.context, settings, offer)

    assert (lamp.pass_index, table.pass_index, plain.pass_index) == (7, 3, 5)
    job = pending.job
    assert job.params.prompt == "a workshop"  # the scene prompt stays the shared one
    by_prompt = {r.prompt: r for r in job.regions}
    assert set(by_prompt) == {"a brass lamp", "a walnut table"}
    assert by_prompt["a brass lamp"].negative == "rust"
    assert by_prompt["a walnut table"].negative == ""
    for obj, prompt in ((lamp, "a brass lamp"), (table, "a walnut table")):
        mask = by_prompt[prompt].mask.to_numpy()
        assert mask.shape == (64, 128, 1) and set(np.unique(mask)) == {0, 255}
        inside, edge = footprint(obj, cam, 128, 64)
        got = mask[..., 0] == 255
        wrong = (got != inside) & ~edge
        assert not wrong.any(), f"{prompt}: {wrong.sum()} pixels off the silhouette"
        assert (got == inside).mean() > 0.97 and inside.sum() > 100

    link = submodule("bridge").get()
    link.run(pending, 120.0)  # the server takes it and the result is applied
    assert pending.failure == "" or pending.failure is None, pending.failure
    assert settings.history[-1].kind == "TEXTURE" and not runtime().busy


def test_pass_index_is_restored_when_the_render_fails(offer: Any, monkeypatch: Any) -> None:
    capture, direction = submodule("passcapture"), submodule("direction")
    cam = scenes.camera()
    box = scenes.cube()
    box.sfumato_prompt.prompt, box.pass_index = "a crate", 4

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        assert box.pass_index == 1  # ours, during the render
        raise RuntimeError("render failed")

    monkeypatch.setattr(capture, "render_layers", broken)
    with pytest.raises(RuntimeError, match="render failed"):
        direction.passes_and_regions(bpy.context.scene, cam, bpy.context.view_layer, [box],
                                     128, 64, offer)  # fmt: skip
    assert box.pass_index == 4


def test_a_server_without_regions_is_told_which_prompt_to_clear(offer: Any) -> None:
    scenes.camera()
    box = scenes.cube()
    box.sfumato_prompt.prompt = "a crate"
    scenes.select(box)
    session = submodule("bridge").get().link.session
    session.offer = dataclasses.replace(offer, capabilities=("generate", "control"))
    with pytest.raises(RuntimeError, match=r"no 'regions' capability.*Object Prompt of Cube"):
        bpy.ops.sfumato.texture_from_view(wait=True)
    box.sfumato_prompt.prompt = "  "  # blank: the scene prompt alone, nothing refused
    assert submodule("direction").texts_of([box]) == {}


def reference_picture(height: int, width: int, weight: float, seed: int) -> tuple[np.ndarray, Any]:
    """A random opaque picture as the scene's reference image (Blender's rows bottom first),
    at ``weight``; returns its RGBA pixels, top row first, and the scene's reference."""
    picture = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    picture[..., 3] = 255
    image = bpy.data.images.new("Look", width, height)
    image.pixels.foreach_set((picture[::-1].astype(np.float32) / 255.0).ravel())
    ref = bpy.context.scene.sfumato_reference
    ref.image, ref.weight = image, weight
    return picture, ref


def test_world_background_carries_the_reference_picture(offer: Any) -> None:
    picture, ref = reference_picture(24, 40, 0.6, seed=3)

    pending = submodule("jobs").prepare_world(bpy.context, bpy.context.scene.sfumato, offer)

    (sent,) = pending.job.references
    assert sent.weight == pytest.approx(0.6) and (sent.start, sent.end) == (0.0, 1.0)
    np.testing.assert_array_equal(sent.image.to_numpy(), picture[..., :3])
    submodule("bridge").get().run(pending, 120.0)
    assert not pending.failure, pending.failure
    assert bpy.context.scene.sfumato.history[-1].kind == "WORLD"

    ref.weight = 0.0  # weight 0 changes nothing: nothing is sent
    assert submodule("jobs").prepare_world(bpy.context, bpy.context.scene.sfumato,
                                           offer).job.references == ()  # fmt: skip


def test_texture_from_view_sends_the_reference_beside_its_controls_and_regions(
    offer: Any,
) -> None:
    """The scene's reference picture goes with Texture from View too: the depth and normal
    controls keep the shapes, the picture gives the look, the objects keep their regions;
    the server runs it and the texture is applied."""
    scenes.camera(width=96, height=64)
    box = scenes.cube()
    box.sfumato_prompt.prompt = "a crate"
    scenes.select(box)
    picture, _ = reference_picture(18, 30, 0.8, seed=11)
    settings = bpy.context.scene.sfumato

    pending = submodule("jobs").prepare_texture(bpy.context, settings, offer)

    job = pending.job
    assert [c.kind.value for c in job.controls] == ["depth", "normal"]
    assert [r.prompt for r in job.regions] == ["a crate"]
    (sent,) = job.references
    assert sent.weight == pytest.approx(0.8)
    np.testing.assert_array_equal(sent.image.to_numpy(), picture[..., :3])
    submodule("bridge").get().run(pending, 120.0)
    assert not pending.failure, pending.failure
    assert settings.history[-1].kind == "TEXTURE"


def test_texture_objects_own_prompt_joins_the_scene_prompt(offer: Any) -> None:
    """Texture Object paints one object: its own words join the scene's for every view."""
    texjob, texcams = submodule("texjob"), submodule("texcams")
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=12, ring_count=6)
    ball = bpy.context.active_object
    ball.sfumato_prompt.prompt, ball.sfumato_prompt.negative = "a brass lamp", "rust"
    s = bpy.context.scene.sfumato
    s.negative, s.texturing.texture_size = "blurry", 64
    s.texturing.strategy, s.texturing.count = "ORBIT", 2
    assert bpy.ops.sfumato.add_texture_cameras() == {"FINISHED"}
    assert texcams.ordered(bpy.context.scene)
    pending = texjob.prepare_texture_object(bpy.context, s, offer)
    assert pending.job.params.prompt == "a workshop, a brass lamp"
    assert pending.job.params.negative == "blurry, rust"
    ball.sfumato_prompt.prompt = ball.sfumato_prompt.negative = ""
    again = texjob.prepare_texture_object(bpy.context, s, offer)
    assert (again.job.params.prompt, again.job.params.negative) == ("a workshop", "blurry")
