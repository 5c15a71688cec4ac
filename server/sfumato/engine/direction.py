"""A job's references and regions around its task: one place for the engine to call.

The tasks (tasks.py, resizing.py) call ``pipe(**arguments)`` without knowing about either;
:class:`WithInputs` is that pipeline with the references' image embeddings added to every
call and, with regions, the prompt replaced by the joined region embeddings. References load
first (their adapter processors become the ones regions wrap) and go last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..protocol.messages import Job, Task
from ..registry import Registry
from . import images, references, regions
from .loader import LoadedModel, Pipeline


class WithInputs:
    """``pipe`` with extra call arguments; every other attribute is the pipeline's own."""

    def __init__(self, pipe: Pipeline, extra: dict[str, Any], replace_prompt: bool) -> None:
        self._pipe = pipe
        self._extra = extra
        self._replace_prompt = replace_prompt

    def __call__(self, **kwargs: Any) -> Any:
        if self._replace_prompt:
            kwargs.pop("prompt", None)
            kwargs.pop("negative_prompt", None)
        return self._pipe(**kwargs, **self._extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


def prepare(job: Job, loaded: LoadedModel, registry: Registry, cache_dir: Path) -> Any:
    """Resolve and load what the job's references need before a step runs (None without)."""
    if not any(r.weight > 0 for r in job.references):
        return None
    return references.parts(loaded, registry, cache_dir)


@contextlib.contextmanager
def applied(
    pipe: Pipeline, job: Job, loaded: LoadedModel, adapter: Any, steps: Any
) -> Iterator[Pipeline]:
    """``pipe`` ready for the job's references and regions; all undone on exit."""
    if adapter is None and not job.regions:
        yield pipe
        return
    p = job.params
    with contextlib.ExitStack() as stack:
        extra: dict[str, Any] = {}
        if adapter is not None:
            extra |= stack.enter_context(
                references.applied(loaded.base, job.references, adapter, p.guidance, steps)
            )
        if job.regions:
            width, height = job.output_size()
            work = (width, height) if job.task is Task.GENERATE else images.work_size(width, height)
            extra |= stack.enter_context(
                regions.applied(pipe, job.regions, p.prompt, p.negative, work, p.guidance)
            )
        yield WithInputs(pipe, extra, replace_prompt=bool(job.regions))
