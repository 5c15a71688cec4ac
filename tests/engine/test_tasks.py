"""generate, refine and inpaint on the real tiny SD pipeline: shapes, seeds, progress, cancel."""

from __future__ import annotations

import numpy as np
import pytest

from sfumato.engine import Engine, JobCancelled
from sfumato.protocol import ProtocolError, Task

from .helpers import Recorder, box_mask, job, picture, run


def test_generate_returns_uint8_rgb_at_the_requested_size(engine: Engine) -> None:
    out = run(engine, job(width=96, height=64, seed=1))
    assert len(out.images) == 1
    image = out.images[0]
    assert image.shape == (64, 96, 3)
    assert image.dtype == np.uint8
    assert image.std() > 0  # a real decoded image, not a blank buffer
    assert out.model == "tiny-sd"
    assert out.tiny is True
    assert out.seeds == (1,)
    assert set(out.timings) == {"load", "run"}


def test_same_seed_gives_identical_images_and_another_seed_differs(engine: Engine) -> None:
    a = run(engine, job(seed=42)).images[0]
    b = run(engine, job(seed=42)).images[0]
    c = run(engine, job(seed=43)).images[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_variants_use_consecutive_seeds_and_match_single_runs(engine: Engine) -> None:
    out = run(engine, job(seed=7, variants=3))
    assert out.seeds == (7, 8, 9)
    assert len(out.images) == 3
    single = run(engine, job(seed=8)).images[0]
    assert np.array_equal(out.images[1], single)
    assert not np.array_equal(out.images[0], out.images[1])


def test_without_a_seed_the_engine_picks_and_reports_one(engine: Engine) -> None:
    out = run(engine, job(seed=None, variants=2))
    first = out.seeds[0]
    assert out.seeds == (first, first + 1)
    replay = run(engine, job(seed=first)).images[0]
    assert np.array_equal(out.images[0], replay)


def test_progress_reports_every_step_across_variants(engine: Engine) -> None:
    rec = Recorder()
    run(engine, job(seed=1, steps=3, variants=2), rec)
    assert rec.steps == [(i, 6) for i in range(1, 7)]


def test_refine_reports_the_steps_it_really_runs(engine: Engine) -> None:
    rec = Recorder()
    image = picture(64, 64)
    run(engine, job(Task.REFINE, image=image, seed=1, steps=10, strength=0.5, variants=2), rec)
    assert rec.steps == [(i, 10) for i in range(1, 11)]  # int(10 × 0.5) = 5 per image


def test_cancel_after_the_first_step_stops_the_job(engine: Engine) -> None:
    rec = Recorder(cancel_after=1)
    with pytest.raises(JobCancelled):
        run(engine, job(seed=1, steps=8, variants=2), rec)
    assert 1 <= len(rec.steps) <= 2


def test_cancel_before_start_runs_no_step(engine: Engine) -> None:
    rec = Recorder(cancel_after=0)
    with pytest.raises(JobCancelled):
        run(engine, job(seed=1), rec)
    assert rec.steps == []


def test_refine_keeps_the_input_size_even_off_the_8_pixel_grid(engine: Engine) -> None:
    out = run(engine, job(Task.REFINE, image=picture(70, 90), seed=3, steps=4, strength=0.5))
    assert out.images[0].shape == (70, 90, 3)
    assert out.images[0].dtype == np.uint8


def test_refine_strength_changes_the_result(engine: Engine) -> None:
    image = picture(64, 64)
    low = run(engine, job(Task.REFINE, image=image, seed=5, steps=8, strength=0.25)).images[0]
    high = run(engine, job(Task.REFINE, image=image, seed=5, steps=8, strength=1.0)).images[0]
    assert not np.array_equal(low, high)


def test_refine_with_too_few_steps_for_the_strength_names_the_fix(engine: Engine) -> None:
    image = picture(64, 64)
    with pytest.raises(ValueError, match=r"params\.strength"):
        run(engine, job(Task.REFINE, image=image, seed=1, steps=4, strength=0.1))


def test_inpaint_restores_unmasked_pixels_exactly(engine: Engine) -> None:
    image = picture(72, 88, channels=4)  # RGBA, off the 8-pixel grid on neither side
    mask = box_mask(72, 88, (16, 16, 48, 56))
    out = run(engine, job(Task.INPAINT, image=image, mask=mask, seed=2, steps=4, strength=1.0))
    result = out.images[0]
    assert result.shape == (72, 88, 3)
    keep = mask[:, :, 0] == 0
    assert np.array_equal(result[keep], image[:, :, :3][keep])
    assert not np.array_equal(result[~keep], image[:, :, :3][~keep])


def test_inpaint_off_grid_size_keeps_unmasked_pixels(engine: Engine) -> None:
    image = picture(67, 61)
    mask = box_mask(67, 61, (5, 5, 30, 30))
    result = run(engine, job(Task.INPAINT, image=image, mask=mask, seed=2, steps=4)).images[0]
    keep = mask[:, :, 0] == 0
    assert result.shape == (67, 61, 3)
    assert np.array_equal(result[keep], image[keep])


def test_transparent_input_is_composited_on_white(engine: Engine) -> None:
    image = picture(64, 64, channels=4)
    image[:8, :, 3] = 0  # a transparent band at the top, outside the mask
    mask = box_mask(64, 64, (32, 0, 64, 64))
    result = run(engine, job(Task.INPAINT, image=image, mask=mask, seed=2, steps=4)).images[0]
    assert (result[:8] == 255).all()
    assert np.array_equal(result[8:32], image[8:32, :, :3])


def test_soft_mask_blends_between_input_and_generated(engine: Engine) -> None:
    image = picture(64, 64)
    hard = box_mask(64, 64, (0, 0, 64, 64))
    soft = np.full_like(hard, 128)  # just over half: the pipeline binarises it to "regenerate"
    args = {"image": image, "seed": 9, "steps": 4, "strength": 1.0}
    generated = run(engine, job(Task.INPAINT, mask=hard, **args)).images[0]
    blended = run(engine, job(Task.INPAINT, mask=soft, **args)).images[0]
    expected = image * (1 - 128 / 255) + generated * (128 / 255)
    assert not np.array_equal(generated, image)
    assert np.abs(blended.astype(float) - expected).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("task", [Task.REFINE, Task.INPAINT, Task.UPSCALE])
@pytest.mark.parametrize(("steps", "strength"), [(4, 0.25), (3, 1 / 3), (7, 0.15), (1, 1.0)])
def test_one_denoising_step_at_the_strength_boundary_runs(
    engine: Engine, task: Task, steps: int, strength: float
) -> None:
    """Issue 9.19: the smallest strength the protocol accepts runs exactly one step per image
    (per tile for upscale), as diffusers counts int(steps × strength)."""
    rec = Recorder()
    image = picture(32, 32)
    mask = np.full((32, 32, 1), 255, np.uint8) if task is Task.INPAINT else None
    out = run(
        engine, job(task, image=image, mask=mask, seed=2, steps=steps, strength=strength), rec
    )
    assert len(out.images) == 1 and rec.steps and rec.steps[0][0] == 1
    assert rec.steps[-1][0] == rec.steps[-1][1]  # the bar ends at 100 %


@pytest.mark.parametrize("task", [Task.REFINE, Task.INPAINT, Task.UPSCALE])
def test_below_the_boundary_the_engine_names_the_field(engine: Engine, task: Task) -> None:
    """A caller that builds a Job itself (no decoder) gets the decoder's rule and message."""
    image = picture(32, 32)
    mask = np.full((32, 32, 1), 255, np.uint8) if task is Task.INPAINT else None
    with pytest.raises(ProtocolError) as caught:
        run(engine, job(task, image=image, mask=mask, seed=2, steps=4, strength=0.2))
    assert caught.value.field == "params.strength" and "at least 0.25" in caught.value.message
