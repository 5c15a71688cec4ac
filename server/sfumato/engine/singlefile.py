"""Single-file checkpoints (``file:model.safetensors``) loaded with no hub access.

A single-file checkpoint holds weights only, in the original (LDM) key layout; diffusers'
``from_single_file`` also needs the family's diffusers configuration — model_index, scheduler,
UNet / VAE / text-encoder configs and the CLIP tokenizer files — and by default downloads them
from the family's hub repo, which fails offline. The package ships those small files
(engine/data/families/: SD1.5 and SDXL base, as their hub repos publish them, without the
safety checker), and the loader passes them as ``config=`` with ``local_files_only=True``.

CLIP's vocabulary (vocab.json + merges.txt, ~1.5 MB) is shipped once in ``families/clip/``
(derived from the BPE list open_clip publishes, see tests/engine/clip_vocab.py) and copied
into each tokenizer folder of a family on first use, into the model cache: diffusers reads a
tokenizer from ``<config>/<tokenizer>/``, and three copies in the package would be waste.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data" / "families"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
VERSION = 1  # bump when a shipped file changes, so caches are rebuilt


def ships(family: str) -> bool:
    """Whether sfumato ships ``family``'s configuration (not sd21: a ``file:`` SD 2.x checkpoint
    names its own ``config`` folder)."""
    return (DATA / family / "model_index.json").is_file()


def shipped(family: str) -> Path:
    """The family's shipped configuration folder (without the CLIP vocabulary)."""
    folder = DATA / family
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(
            f"no shipped single-file configuration for family {family!r} at {folder}; "
            "reinstall sfumato (the package data is missing)"
        )
    return folder


def family_config(family: str, cache_dir: Path) -> Path:
    """A complete diffusers configuration folder for ``family``, built once in ``cache_dir``."""
    target = Path(cache_dir) / "single-file-configs" / f"{family}-v{VERSION}"
    if (target / "model_index.json").is_file():
        return target
    source = shipped(family)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    for tokenizer in partial.glob("tokenizer*"):
        for name in TOKENIZER_FILES:
            shutil.copyfile(DATA / "clip" / name, tokenizer / name)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # a half-built folder never looks complete
    return target
