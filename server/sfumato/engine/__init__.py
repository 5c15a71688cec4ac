"""The engine: the only package that imports torch, diffusers and transformers.

It turns a :class:`sfumato.protocol.Job` into images with diffusers pipelines, loading the
model the registry names (tiny random models are built locally on first use)::

    engine = Engine(registry, cache_dir=Path("~/.cache/sfumato").expanduser())
    engine.load("tiny-sd")
    out = engine.run(job, on_step=print, is_cancelled=lambda: False)

Modules: ``engine`` (the Engine and its output), ``tasks`` (generate, refine, inpaint),
``loader`` (sources → pipelines, ``from_pipe`` derivation), ``tiny`` (the tiny families),
``devices`` (device and dtype), ``images`` (numpy ↔ PIL at the pipeline's edge).
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
