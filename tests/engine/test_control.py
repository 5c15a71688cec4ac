"""ControlNets on the real tiny pipelines: every kind acts, conversions follow the documented
conventions numerically, several at once, strength and step window, and missing weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfumato.engine import Engine, ModelUnavailable, UnknownModel
from sfumato.engine.control import DEPTH_FLOOR, depth_to_map, normal_to_map
from sfumato.protocol import Array, Control, ControlKind, Task
from sfumato.registry import Registry

from .helpers import job, picture, run

KINDS = list(ControlKind)


def control(kind: ControlKind, image: np.ndarray, **options: object) -> Control:
    return Control(kind, Array.from_numpy(image), **options)  # type: ignore[arg-type]


def depth_pass(h: int = 64, w: int = 64) -> np.ndarray:
    """A ramp from 1 to 5 units, left to right: a floor seen at a slant."""
    return np.tile(np.linspace(1.0, 5.0, w, dtype=np.float32), (h, 1))[:, :, None]


def normal_pass(h: int = 64, w: int = 64) -> np.ndarray:
    """The left half faces the camera, the right half faces up."""
    n = np.zeros((h, w, 3), np.float32)
    n[:, : w // 2] = (0, 0, 1)
    n[:, w // 2 :] = (0, 1, 0)
    return n


@pytest.fixture(scope="module")
def base(engine: Engine) -> np.ndarray:
    return run(engine, job(seed=5)).images[0]


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_each_kind_changes_the_image(engine: Engine, base: np.ndarray, kind: ControlKind) -> None:
    out = run(engine, job(seed=5, controls=(control(kind, picture(64, 64, seed=1)),))).images[0]
    assert out.shape == base.shape
    assert np.abs(out.astype(int) - base).mean() > 2


def test_the_map_matters_not_only_the_controlnet(engine: Engine) -> None:
    a = run(engine, job(seed=5, controls=(control(ControlKind.CANNY, picture(64, 64, seed=1)),)))
    b = run(
        engine, job(seed=5, controls=(control(ControlKind.CANNY, 255 - picture(64, 64, seed=1)),))
    )
    assert np.abs(a.images[0].astype(int) - b.images[0]).mean() > 1


@pytest.mark.parametrize(
    ("kind", "data"), [(ControlKind.DEPTH, depth_pass()), (ControlKind.NORMAL, normal_pass())]
)
def test_raw_depth_and_normals_are_converted_and_used(
    engine: Engine, base: np.ndarray, kind: ControlKind, data: np.ndarray
) -> None:
    out = run(engine, job(seed=5, controls=(control(kind, data),))).images[0]
    assert np.abs(out.astype(int) - base).mean() > 2


def test_depth_map_is_near_bright_far_dark_background_black() -> None:
    depth = np.array([[1.0, 2.0, 4.0, 3.0, np.inf, 1e10]], np.float32)[:, :, None]
    background = np.array([[0, 0, 0, 255, 0, 0]], np.uint8)[:, :, None]
    gray = depth_to_map(depth, background)[0, :, 0]
    assert gray.dtype == np.uint8
    # disparities 1, 0.5, 0.25 → 1, 1/3, 0 of the foreground range, above the floor
    floor = DEPTH_FLOOR * 255
    expected = [255, round(floor + (255 - floor) / 3), round(floor), 0, 0, 0]
    assert gray.tolist() == expected
    flat = depth_to_map(np.full((2, 2, 1), 3.0, np.float32))
    assert (flat == 255).all()  # one distance: all near, none of it background


def test_normal_map_follows_the_normalbae_convention() -> None:
    normals = np.array([[(0, 0, 1), (-1, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 0)]], np.float32)
    rgb = normal_to_map(normals)[0]
    assert rgb[0].tolist() == [128, 128, 255]  # facing the camera: blue
    assert rgb[1].tolist() == [255, 128, 128]  # facing left: red
    assert rgb[2].tolist() == [128, 255, 128]  # facing up: green
    assert rgb[3].tolist() == [0, 128, 128]  # facing right: no red
    assert rgb[4].tolist() == [0, 0, 0]  # no surface: black


def test_strength_zero_is_the_plain_image_and_the_step_window_matters(
    engine: Engine, base: np.ndarray
) -> None:
    pic = picture(64, 64, seed=1)
    off = run(engine, job(seed=5, controls=(control(ControlKind.DEPTH, pic, strength=0.0),)))
    assert np.array_equal(off.images[0], base)
    full = run(engine, job(seed=5, controls=(control(ControlKind.DEPTH, pic),))).images[0]
    late = run(engine, job(seed=5, controls=(control(ControlKind.DEPTH, pic, start=0.5),)))
    assert not np.array_equal(full, late.images[0])


def test_several_controls_at_once(engine: Engine) -> None:
    depth = control(ControlKind.DEPTH, depth_pass())
    canny = control(ControlKind.CANNY, picture(64, 64, seed=3), strength=0.7)
    both = run(engine, job(seed=5, controls=(depth, canny))).images[0]
    for single in (depth, canny):
        alone = run(engine, job(seed=5, controls=(single,))).images[0]
        assert np.abs(both.astype(int) - alone).mean() > 1


def test_controls_work_with_refine_and_inpaint(engine: Engine) -> None:
    pic, canny = picture(64, 64), control(ControlKind.CANNY, picture(64, 64, seed=3))
    for task, extra in (
        (Task.REFINE, {}),
        (Task.INPAINT, {"mask": np.full((64, 64, 1), 255, np.uint8)}),
    ):
        plain = run(engine, job(task, image=pic, seed=5, steps=4, strength=1.0, **extra))
        ruled = run(engine, job(task, image=pic, seed=5, steps=4, strength=1.0, controls=(canny,), **extra))  # fmt: skip
        assert not np.array_equal(plain.images[0], ruled.images[0])


def test_offline_preprocessors_run_and_change_the_map(engine: Engine) -> None:
    pic = picture(64, 64, seed=1)
    for kind in (ControlKind.CANNY, ControlKind.SHUFFLE):
        ready = run(engine, job(seed=5, controls=(control(kind, pic),))).images[0]
        detected = run(engine, job(seed=5, controls=(control(kind, pic, preprocess=True),)))
        again = run(engine, job(seed=5, controls=(control(kind, pic, preprocess=True),)))
        assert not np.array_equal(ready, detected.images[0])
        assert np.array_equal(detected.images[0], again.images[0])  # shuffle is seeded


@pytest.mark.parametrize(
    ("kind", "filename"),
    [
        (ControlKind.DEPTH, "dpt_hybrid-midas-501f0c75.pt"),
        (ControlKind.NORMAL, "scannet.pt"),
        (ControlKind.LINEART, "sk_model.pth"),
        (ControlKind.POSE, "body_pose_model.pth"),
    ],
)
def test_missing_detector_weights_name_the_file_and_the_fetch(
    engine: Engine, kind: ControlKind, filename: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SFUMATO_ANNOTATORS", raising=False)
    with pytest.raises(ModelUnavailable) as caught:
        run(engine, job(seed=5, controls=(control(kind, picture(64, 64), preprocess=True),)))
    message = str(caught.value)
    assert "lllyasviel/Annotators" in message and filename in message
    assert "huggingface-cli download" in message
    assert caught.value.field == "inputs.controls[0].preprocess"  # issue 9.21: not params.model


def test_missing_detector_weights_name_the_control_that_asked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SFUMATO_ANNOTATORS", raising=False)
    controls = (
        control(ControlKind.CANNY, picture(64, 64), preprocess=True),  # needs no weights
        control(ControlKind.DEPTH, picture(64, 64), preprocess=True),
    )
    with pytest.raises(ModelUnavailable) as caught:
        run(engine, job(seed=5, controls=controls))
    assert caught.value.field == "inputs.controls[1].preprocess"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([ControlKind.CANNY, ControlKind.SHUFFLE]),
    st.integers(1, 80),
    st.integers(1, 80),
    st.integers(0, 2**32 - 1),
)
def test_offline_detectors_take_pictures_of_any_small_size(
    kind: ControlKind, height: int, width: int, seed: int
) -> None:
    """Issue 17: canny on a picture of 32 px or less failed with an OpenCV assertion. Every
    size works, and the map comes back at the output size, as an RGB map."""
    from sfumato.engine.control import control_map

    out = control_map(control(kind, picture(height, width), preprocess=True), (64, 48), seed)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_no_controlnet_for_the_family_and_kind_is_unknown_model(
    tmp_path: Path, tiny_cache: Path
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        'default = "t"\n[models.t]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'
    )
    eng = Engine(Registry.load(path), cache_dir=tiny_cache, device="cpu")
    with pytest.raises(UnknownModel, match="no depth ControlNet is registered for the sd15"):
        run(eng, job(seed=5, controls=(control(ControlKind.DEPTH, depth_pass()),)))


def test_sdxl_controlnet_runs(tiny_cache: Path) -> None:
    eng = Engine(Registry.load(None), cache_dir=tiny_cache, device="cpu")
    plain = run(eng, job(seed=5, model="tiny-sdxl", steps=2)).images[0]
    ruled = run(eng, job(seed=5, model="tiny-sdxl", steps=2,
                         controls=(control(ControlKind.DEPTH, depth_pass()),))).images[0]  # fmt: skip
    assert np.abs(ruled.astype(int) - plain).mean() > 1
