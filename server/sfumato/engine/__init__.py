"""The engine: the only package that imports torch, diffusers and transformers.

It turns a :class:`sfumato.protocol.Job` into images with diffusers pipelines, loading the
model the registry names (tiny random models are built locally on first use)::

    engine = Engine(registry, cache_dir=Path("~/.cache/sfumato").expanduser())
    engine.load("tiny-sd")
    out = engine.run(job, on_step=print, is_cancelled=lambda: False)

Modules: ``engine`` (the Engine and its output), ``tasks`` (generate, refine, inpaint),
``resizing`` (outpaint, upscale), ``loader`` (sources → pipelines, ``from_pipe`` derivation),
``tiny`` and ``tiny_parts`` (the tiny families and their ControlNets, LoRAs, preview
decoders), ``devices`` (device and dtype), ``images`` (numpy ↔ PIL at the pipeline's edge).
Conditioning: ``control`` (maps and their conventions), ``detectors`` (preprocess),
``controlnets`` (a job's ControlNets), ``lora``, ``tiling``, ``previews``.
"""

from ..registry import UnknownModel
from .devices import choose_device, choose_dtype
from .engine import TINY_WARNING, Engine, EngineOutput, pick_seeds
from .errors import JobCancelled, ModelUnavailable
from .tiny import ensure_tiny

__all__ = [
    "TINY_WARNING",
    "Engine",
    "EngineOutput",
    "JobCancelled",
    "ModelUnavailable",
    "UnknownModel",
    "choose_device",
    "choose_dtype",
    "ensure_tiny",
    "pick_seeds",
]
