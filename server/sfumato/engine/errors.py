"""Errors the engine raises on purpose. Anything else (a diffusers bug, out of memory)
propagates unchanged and the service reports it as ``job_failed``."""

from __future__ import annotations

from typing import ClassVar

from ..protocol.errors import ErrorCode, SfumatoError


class ModelUnavailable(SfumatoError):
    """A registered model whose weights cannot be found; the message says how to get them.

    ``field`` is the job field that asked for the weights: ``params.model`` unless the engine
    knows better (a control's ControlNet or its preprocessor)."""

    code: ClassVar[ErrorCode] = ErrorCode.MODEL_UNAVAILABLE

    def __init__(self, model: str, message: str, field: str = "params.model") -> None:
        super().__init__(message)
        self.model = model
        self.field = field


class JobCancelled(SfumatoError):
    """``is_cancelled()`` turned true while the job ran; the partial images are discarded."""

    def __init__(self, job_id: str, step: int = 0) -> None:
        after = f" after step {step}" if step else " before it started"
        super().__init__(f"job {job_id} cancelled{after}")
        self.job_id = job_id
        self.step = step
