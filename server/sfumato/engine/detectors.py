"""``preprocess``: controlnet_aux's detector for a control kind, run on the client's picture.

Canny and content shuffle are plain image operations and always work offline. The others are
networks whose weights live in the ``lllyasviel/Annotators`` repository: they load from
``$SFUMATO_ANNOTATORS`` (a folder holding the files) or the local Hugging Face cache, and
when the file is missing the job fails with ModelUnavailable naming the file and the command
that fetches it, never with a stack trace from inside controlnet_aux.

controlnet_aux is imported here, lazily: importing it costs seconds (it pulls every detector),
and only jobs with ``preprocess`` need it. Loaded detectors are kept for the process.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..protocol.conditioning import ControlKind
from .errors import ModelUnavailable

ANNOTATORS = "lllyasviel/Annotators"
ENV = "SFUMATO_ANNOTATORS"
DETECT_RESOLUTION = 512  # controlnet_aux's default; smaller pictures are not upscaled…
# … except below 64: controlnet_aux rounds sides to multiples of 64, so a picture of 32 px or
# less would round to 0 and fail inside OpenCV. Tiny pictures are detected at 64.
MIN_DETECT_RESOLUTION = 64


@dataclass(frozen=True)
class Weighted:
    """A detector with weights: its controlnet_aux class and the file it loads."""

    module: str
    cls: str
    filename: str
    options: tuple[tuple[str, Any], ...] = ()


WEIGHTED: dict[ControlKind, Weighted] = {
    ControlKind.DEPTH: Weighted("midas", "MidasDetector", "dpt_hybrid-midas-501f0c75.pt"),
    ControlKind.NORMAL: Weighted("normalbae", "NormalBaeDetector", "scannet.pt"),
    ControlKind.LINEART: Weighted("lineart", "LineartDetector", "sk_model.pth"),
    ControlKind.POSE: Weighted("open_pose", "OpenposeDetector", "body_pose_model.pth"),
    ControlKind.SCRIBBLE: Weighted(
        "hed", "HEDdetector", "ControlNetHED.pth", options=(("scribble", True),)
    ),
}
_loaded: dict[ControlKind, Callable[..., Any]] = {}


def detect(kind: ControlKind, picture: np.ndarray, seed: int) -> np.ndarray:
    """uint8 H'×W'×3 control map of ``picture`` (uint8 H×W×3) for ``kind``.

    The result has the detector's resolution; the caller resizes it to the output. ``seed``
    makes content shuffle reproducible (it draws its displacement field from numpy's global
    generator)."""
    resolution = max(MIN_DETECT_RESOLUTION, min(DETECT_RESOLUTION, min(picture.shape[:2])))
    sizes = {"detect_resolution": resolution, "image_resolution": resolution}
    if kind is ControlKind.CANNY:
        from controlnet_aux.canny import CannyDetector

        out = CannyDetector()(picture, 100, 200, output_type="np", **sizes)
    elif kind is ControlKind.SHUFFLE:
        from controlnet_aux.shuffle import ContentShuffleDetector

        with _numpy_seed(seed):
            out = ContentShuffleDetector()(picture, output_type="np", **sizes)
    else:
        spec = WEIGHTED[kind]
        out = _weighted(kind)(picture, output_type="np", **dict(spec.options), **sizes)
    out = np.asarray(out, dtype=np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2) if out.ndim == 2 else out


def _weighted(kind: ControlKind) -> Callable[..., Any]:
    if kind not in _loaded:
        spec = WEIGHTED[kind]
        cls = getattr(importlib.import_module(f"controlnet_aux.{spec.module}"), spec.cls)
        folder = os.environ.get(ENV)
        try:
            if folder:
                detector = cls.from_pretrained(folder, filename=spec.filename)
            else:
                detector = cls.from_pretrained(ANNOTATORS, filename=spec.filename)
        except OSError as exc:  # offline cache misses and missing files are OSErrors
            where = f"the folder ${ENV}={folder}" if folder else "the Hugging Face cache"
            raise ModelUnavailable(
                ANNOTATORS,
                f"preprocess for {kind.value} needs {spec.cls}'s weights {ANNOTATORS}/"
                f"{spec.filename}, which are not in {where}. On a connected machine run "
                f"`huggingface-cli download {ANNOTATORS} {spec.filename}` (and copy the cache "
                f"here), or put the file in a folder and set ${ENV} to it; or send a ready "
                f"{kind.value} map without preprocess",
            ) from exc
        _loaded[kind] = detector
    return _loaded[kind]


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global generator for one call and put its state back afterwards."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)
