"""Image sizes for camera frames (issue 9, item 15): the generated image is stretched over the
camera's frame, so its aspect must be the frame's, within one latent step, for any render
resolution, percentage and pixel aspect, portrait or landscape, within the server's limits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from .conftest import submodule


@pytest.fixture(scope="module")
def geometry(installed: str) -> Any:
    import importlib

    return importlib.import_module(f"{installed}.geometry")


resolutions = st.integers(1, 16384)
percentages = st.integers(1, 1000)
pixel_aspects = st.floats(1.0, 200.0)  # Blender's range for pixel_aspect_x/y
long_sides = st.integers(1, 8192)
max_sides = st.integers(8, 8192)


@settings(max_examples=400, deadline=None)
@given(resolutions, resolutions, percentages, pixel_aspects, pixel_aspects, long_sides, max_sides)
@example(1000, 333, 100, 1.0, 1.0, 128, 4096)  # the case: was 128×64 for a 3:1 frame
@example(333, 1000, 100, 1.0, 1.0, 128, 4096)
@example(1920, 1080, 50, 2.0, 1.0, 512, 1024)  # anamorphic
@example(64, 64, 100, 1.0, 1.0, 64, 64)
def test_the_image_keeps_the_frames_aspect(
    geometry: Any, rx: int, ry: int, pct: int, px: float, py: float, long_side: int, top: int
) -> None:
    aspect = geometry.render_aspect(rx, ry, pct, px, py)
    top8 = top // 8 * 8
    ratio = max(aspect, 1 / aspect)
    try:
        width, height = geometry.frame_size(aspect, 1.0, long_side, top)
    except ValueError as exc:
        # only when no image of 64 … max_side a side can keep this aspect
        assert round(64 * ratio / 8) * 8 > top8 or top8 < 64, (aspect, top)
        assert "change the render resolution" in str(exc)
        return
    assert width % 8 == 0 and height % 8 == 0
    assert 64 <= width <= top8 and 64 <= height <= top8
    if aspect >= 1:
        assert abs(width - height * aspect) <= 4.0 + 1e-9  # within half a latent step
        assert width >= height
    else:
        assert abs(height - width / aspect) <= 4.0 + 1e-9
        assert height >= width
    wanted = min(top8, max(64, long_side // 8 * 8))
    long = max(width, height)
    if wanted / ratio >= 64:  # the short side is not held up by the minimum
        assert abs(long - wanted) <= 12 * ratio + 4 + 1e-9  # near the Resolution setting
    else:  # it is: the long side grows just enough to keep the aspect
        assert min(width, height) == 64


def test_render_aspect_follows_blenders_rounding(geometry: Any) -> None:
    assert geometry.render_aspect(1920, 1080, 100, 1.0, 1.0) == pytest.approx(16 / 9)
    assert geometry.render_aspect(1000, 500, 100, 1.0, 2.0) == pytest.approx(1.0)
    assert geometry.render_aspect(101, 100, 1, 1.0, 1.0) == 1.0  # 1×1 pixels at 1 %


def test_a_frame_too_narrow_for_the_server_says_what_to_do(geometry: Any) -> None:
    with pytest.raises(ValueError, match=r"100\.0:1.*change the render resolution"):
        geometry.frame_size(100, 1, 512, 4096)
    assert geometry.frame_size(3, 1, 128) == (192, 64)


def test_the_camera_frame_of_a_scene(addon: Any) -> None:
    """jobs._camera_frame reads the scene's render settings and the server's limit."""
    import bpy

    from sfumato.protocol import Limits, Welcome

    jobs = submodule("jobs")
    render = bpy.context.scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1000, 333, 100
    render.pixel_aspect_x, render.pixel_aspect_y = 1.0, 1.0
    settings = bpy.context.scene.sfumato
    settings.resolution = 128
    welcome = Welcome("0", 1, limits=Limits(max_image_side=256))
    assert jobs._camera_frame(bpy.context, settings, welcome) == (192, 64)
    render.pixel_aspect_x = 2.0  # anamorphic: displayed 6:1, wider than 64 … 256 can keep
    with pytest.raises(jobs.UserError, match="change the render resolution"):
        jobs._camera_frame(bpy.context, settings, welcome)
    welcome = Welcome("0", 1, limits=Limits(max_image_side=4096))
    assert jobs._camera_frame(bpy.context, settings, welcome) == (384, 64)
    render.resolution_x, render.resolution_y, render.pixel_aspect_x = 333, 1000, 1.0
    assert jobs._camera_frame(bpy.context, settings, welcome) == (64, 192)  # portrait
