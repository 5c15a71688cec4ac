"""Errors the engine raises on purpose: a rejection (:class:`JobRejected`, with its wire code
and field; the worker sends it as it is) or a cancel. Anything else (a diffusers bug, out of
memory, a ValueError from inside a library) propagates unchanged: the service logs its
traceback and reports ``job_failed``. The whole tree: sfumato.protocol.errors."""

from __future__ import annotations

from ..protocol.errors import ErrorCode, JobRejected, SfumatoError

__all__ = ["JobCancelled", "JobRejected", "ModelUnavailable", "bad_input"]


def bad_input(message: str, field: str, code: ErrorCode = ErrorCode.BAD_ARRAY) -> JobRejected:
    """An input the task cannot take (the decoder checks these too; a caller that built its
    Job by hand meets them here): the message names ``field`` and the fix."""
    return JobRejected(code, message, field=field)


class ModelUnavailable(JobRejected):
    """A registered model whose weights cannot be found; the message says how to get them.

    ``field`` is the job field that asked for the weights: ``params.model`` unless the engine
    knows better (a control's ControlNet or its preprocessor)."""

    def __init__(self, model: str, message: str, field: str = "params.model") -> None:
        super().__init__(ErrorCode.MODEL_UNAVAILABLE, message, field=field)
        self.model = model


class JobCancelled(SfumatoError):
    """``is_cancelled()`` turned true while the job ran; the partial images are discarded."""

    def __init__(self, job_id: str, step: int = 0) -> None:
        after = f" after step {step}" if step else " before it started"
        super().__init__(f"job {job_id} cancelled{after}")
        self.job_id = job_id
        self.step = step
