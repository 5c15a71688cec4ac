"""Step previews (decoder and fallback), outpaint and tiled upscale on the tiny pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sfumato.engine import Engine
from sfumato.engine.previews import MAX_SIDE, preview_size
from sfumato.engine.resizing import BLEND, feather, grow, tiles
from sfumato.protocol import Task
from sfumato.registry import Registry

from .helpers import Recorder, job, picture, run


def test_previews_arrive_every_n_steps_at_the_output_aspect(engine: Engine) -> None:
    rec = Recorder()
    run(engine, job(seed=1, steps=6, width=128, height=64, preview_every=2), rec)
    assert sorted(rec.previews) == [2, 4, 6]
    for image in rec.previews.values():
        assert image.dtype == np.uint8 and image.shape == (64, 128, 3)
    assert len({image.tobytes() for image in rec.previews.values()}) == 3  # they evolve
    silent = Recorder()
    run(engine, job(seed=1, steps=3), silent)
    assert silent.previews == {} and len(silent.steps) == 3


def test_preview_size_is_small() -> None:
    assert preview_size(1024, 512) == (MAX_SIDE, 128)
    assert preview_size(64, 64) == (64, 64)
    assert max(preview_size(4096, 3000)) == MAX_SIDE


def test_without_a_preview_decoder_the_latent_approximation_is_used(
    tmp_path: Path, tiny_cache: Path
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        'default = "t"\n[models.t]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'
    )
    eng = Engine(Registry.load(path), cache_dir=tiny_cache, device="cpu")
    rec = Recorder()
    run(eng, job(seed=1, steps=2, preview_every=1), rec)
    assert sorted(rec.previews) == [1, 2]
    assert rec.previews[2].shape == (64, 64, 3) and rec.previews[2].std() > 0


def test_outpaint_keeps_the_original_and_fills_the_margins(engine: Engine) -> None:
    image = picture(64, 64)
    expand = (16, 0, 16, 8)  # left, top, right, bottom
    rec = Recorder()
    out = run(
        engine, job(Task.OUTPAINT, image=image, seed=3, steps=3, strength=1.0, expand=expand), rec
    )
    result = out.images[0]
    assert result.shape == (72, 96, 3)
    # outside the blend band (left, right and bottom were grown; the top was not)
    assert np.array_equal(
        result[0 : 64 - BLEND, 16 + BLEND : 80 - BLEND], image[: 64 - BLEND, BLEND:-BLEND]
    )
    canvas, mask = grow(image, expand)
    margins = mask[:, :, 0] == 255
    assert not np.array_equal(result[margins], canvas[margins])  # generated, not the fill
    assert result[:, :16].std() > 5 and result[64:].std() > 5
    assert rec.steps[-1] == (3, 3)


def test_outpaint_mask_ramps_across_the_blend_band() -> None:
    _canvas, mask = grow(picture(64, 64), (16, 0, 0, 0))
    row = mask[10, :, 0]
    assert (row[:16] == 255).all() and (row[16 + BLEND :] == 0).all()
    assert (np.diff(row[16 : 16 + BLEND].astype(int)) < 0).all()


def test_upscale_enlarges_over_several_tiles_without_seams(engine: Engine) -> None:
    image = picture(48, 64)
    rec = Recorder()
    out = run(engine, job(Task.UPSCALE, image=image, seed=3, steps=4, strength=0.5, scale=2), rec)
    result = out.images[0].astype(float)
    assert result.shape == (96, 128, 3)
    boxes = tiles((128, 96), 64)
    assert len(boxes) >= 4
    assert rec.steps[-1] == (2 * len(boxes), 2 * len(boxes))  # int(4 × 0.5) steps per tile
    # Jumps across tile edges stay close to those between other pixels of the same phase in
    # the 8-pixel latent grid (the tiny VAE draws blocky noise, so compare like with like).
    for axis, length in ((1, 128), (0, 96)):
        d = np.abs(np.diff(result, axis=axis)).mean(axis=(0, 2) if axis == 1 else (1, 2))
        for box in boxes:
            for edge in (box[1 - axis], box[3 - axis]):
                if 0 < edge < length:
                    assert d[edge - 1] < 1.5 * np.median(d[(edge - 1) % 8 :: 8])


def test_tile_blend_weights_have_no_jumps() -> None:
    size = (200, 136)
    boxes = tiles(size, 64)
    weights = [feather(box, size) for box in boxes]
    total = np.zeros((size[1], size[0], 1))
    for box, w in zip(boxes, weights, strict=True):
        total[box[1] : box[3], box[0] : box[2]] += w
    assert total.min() > 0.5  # every pixel is covered with real weight
    for box, w in zip(boxes, weights, strict=True):
        share = np.zeros_like(total)
        share[box[1] : box[3], box[0] : box[2]] = w
        share /= total
        # A tile's share of the result changes by at most one ramp step between neighbours.
        assert np.abs(np.diff(share, axis=0)).max() <= 1 / 16 + 1e-6
        assert np.abs(np.diff(share, axis=1)).max() <= 1 / 16 + 1e-6


@pytest.mark.parametrize(("length", "tile"), [(64, 64), (96, 64), (128, 64), (2048, 512)])
def test_tiles_cover_with_overlap(length: int, tile: int) -> None:
    boxes = tiles((length, 8), tile)
    starts = [b[0] for b in boxes]
    ends = [b[2] for b in boxes]
    assert starts[0] == 0 and ends[-1] == length
    assert all(e - s <= tile for s, e in zip(starts, ends, strict=True))
    assert all(end - nxt >= tile // 4 for end, nxt in zip(ends, starts[1:], strict=False))
