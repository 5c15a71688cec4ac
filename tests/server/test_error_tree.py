"""One error tree: every exception Sfumato defines is a SfumatoError, and the worker ends a
job with exactly the code and field the error carries; anything else is a bug, reported as
job_failed with its traceback in the log, never as a friendlier code."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from pathlib import Path

import pytest

import sfumato
from sfumato.protocol import Error, ErrorCode, Job, JobParams, JobRejected, ProtocolError, Task
from sfumato.protocol.errors import SfumatoError
from sfumato.registry import LoraMismatch, NoControlNet, Registry, UnknownModel
from sfumato.service.admission import Refusal
from sfumato.service.config import ServerConfig
from sfumato.service.fair_queue import FairQueue, JobEntry
from sfumato.service.store import ResultStore, StoreError
from sfumato.service.worker import EngineUnavailable, Worker

# Modules that need what the server test environment has anyway; the plugins sit beside the
# tree (docs/architecture.md, "Errors") and are not part of the sfumato package.
MODULES = [m.name for m in pkgutil.walk_packages(sfumato.__path__, "sfumato.")]


def test_every_exception_defined_in_sfumato_is_a_sfumato_error() -> None:
    outside = []
    for name in MODULES:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            mine = cls.__module__ == name and issubclass(cls, BaseException)
            if mine and not issubclass(cls, SfumatoError):
                outside.append(f"{name}.{cls.__qualname__}")
    assert outside == []
    assert "sfumato.engine.errors" in MODULES and "sfumato.cli.conditioning" in MODULES


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    return Worker(ServerConfig(results=tmp_path), Registry.load(None), ResultStore(tmp_path),
                  FairQueue(), lambda owner, message: None)  # fmt: skip


def entry() -> JobEntry:
    job = Job("job-7", Task.GENERATE, JobParams(prompt="p", width=64, height=64, steps=2))
    return JobEntry(job, owner="o", connection=1, model="tiny-sd")


def engine_errors() -> list[tuple[Exception, ErrorCode, str | None]]:
    from sfumato.engine import ModelUnavailable

    return [
        (JobRejected(ErrorCode.BAD_ARRAY, "inputs.mask: wrong size", field="inputs.mask"),
         ErrorCode.BAD_ARRAY, "inputs.mask"),
        (ModelUnavailable("m", "weights missing; download them", "inputs.controls[0].kind"),
         ErrorCode.MODEL_UNAVAILABLE, "inputs.controls[0].kind"),
        (Refusal(ErrorCode.NOT_APPROVED, "params.model: not approved", "params.model"),
         ErrorCode.NOT_APPROVED, "params.model"),
        (ProtocolError(ErrorCode.BAD_FIELD, "params.strength too low", field="params.strength"),
         ErrorCode.BAD_FIELD, "params.strength"),
        (UnknownModel("x", ("tiny-sd",)), ErrorCode.UNKNOWN_MODEL, "params.model"),
        (NoControlNet("sd15", "depth", ()), ErrorCode.UNKNOWN_MODEL, "inputs.controls"),
        (LoraMismatch("params.loras: 'a' is a LoRA for sdxl"), ErrorCode.UNSUPPORTED, "params.loras"),
        (StoreError("the disk is full; free space"), ErrorCode.STORE_FAILED, None),
        (EngineUnavailable("torch does not import; repair it"), ErrorCode.ENGINE_UNAVAILABLE, None),
    ]  # fmt: skip


def test_typed_errors_end_the_job_with_their_own_code_and_field(worker: Worker) -> None:
    for exc, code, field in engine_errors():
        event = worker._failure(entry(), exc)
        assert isinstance(event, Error)
        assert (event.code, event.field, event.id) == (code, field, "job-7"), exc
        assert event.message == str(exc)


@pytest.mark.parametrize(
    "exc",
    [ValueError("diffusers: height must be divisible by 8"), KeyError("unet"),
     RuntimeError("CUDA error"), TypeError("bad call")],
)  # fmt: skip
def test_a_library_error_is_job_failed_with_a_logged_traceback(
    worker: Worker, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise exc  # a real traceback, as from the engine thread
    except Exception as raised:
        with caplog.at_level(logging.ERROR, "sfumato.worker"):
            event = worker._failure(entry(), raised)
    assert isinstance(event, Error) and event.code is ErrorCode.JOB_FAILED
    assert type(exc).__name__ in event.message and "server log" in event.message
    traced = [r for r in caplog.records if r.exc_info and r.exc_info[1] is exc]
    assert traced, "the traceback must reach the log"
