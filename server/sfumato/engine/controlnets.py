"""A job's controls → ControlNet models (loaded once, by registry name) and prepared maps.

The registry picks the ControlNet for the base model's family and the control's kind
(``registry.controlnet``); the model loads on first use into the loaded base model's cache
(on its device, in its dtype) and stays until the base model is unloaded. Maps are converted
or detected (``control.py``, ``detectors.py``) at the job's output size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..protocol.messages import Job
from ..registry import Registry
from .control import PreparedControl, control_map
from .errors import ModelUnavailable
from .loader import LoadedModel, load_part


def prepare_controls(
    job: Job,
    loaded: LoadedModel,
    registry: Registry,
    cache_dir: Path,
    size: tuple[int, int],
    seed: int,
) -> tuple[PreparedControl, ...]:
    """Every control of ``job``, ready for the pipeline; raises NoControlNet (unknown_model)
    or ModelUnavailable before any denoising starts."""
    from diffusers import ControlNetModel

    entries = [
        registry.controlnet(loaded.entry.family, c.kind.value, tiny=loaded.entry.tiny)
        for c in job.controls
    ]
    prepared = []
    for n, (control, entry) in enumerate(zip(job.controls, entries, strict=True)):
        field = f"inputs.controls[{n}]"
        if entry.name not in loaded.controlnets:
            with _blame(f"{field}.kind"):  # the kind picked this ControlNet
                model = load_part(entry, ControlNetModel, loaded.dtype, cache_dir)
            loaded.controlnets[entry.name] = model.to(loaded.device)
        with _blame(f"{field}.preprocess"):  # only a detector loads weights here
            map_ = control_map(control, size, seed)
        prepared.append(
            PreparedControl(
                kind=control.kind,
                entry=entry,
                map=map_,
                strength=control.strength,
                start=control.start,
                end=control.end,
            )
        )
    return tuple(prepared)


@contextlib.contextmanager
def _blame(field: str) -> Iterator[None]:
    """Missing weights are reported at the field that asked for them, not params.model."""
    try:
        yield
    except ModelUnavailable as exc:
        exc.field = field
        raise
