"""Which device and dtype a model runs on.

The choice is made once per :class:`~sfumato.engine.Engine`: an explicit argument wins, then the
``SFUMATO_DEVICE`` environment variable, then the best device present (CUDA, then Apple MPS,
then the CPU). Half precision halves memory and roughly doubles speed on GPUs, and SD1.5/SDXL
are published for it; CPUs have no fast fp16 path, so they run fp32. Tiny models always run fp32
so that tests are bit-reproducible everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

ENV = "SFUMATO_DEVICE"
_SPEC = re.compile(r"^(cpu|mps|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Available:
    """What this machine offers; a value so that the decision can be tested without a GPU."""

    cuda_devices: int
    mps: bool

    @classmethod
    def probe(cls) -> Available:
        mps = getattr(torch.backends, "mps", None)
        return cls(
            cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
            mps=bool(mps is not None and mps.is_available()),
        )


def choose_device(
    requested: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    available: Available | None = None,
) -> str:
    """The torch device string to run on. Raises ValueError naming the setting and the fix."""
    env = os.environ if env is None else env
    available = Available.probe() if available is None else available
    source = "device"
    if requested is None and env.get(ENV):
        requested, source = env[ENV], ENV
    if requested is None or requested.strip().lower() == "auto":
        if available.cuda_devices:
            return "cuda"
        return "mps" if available.mps else "cpu"
    spec = requested.strip().lower()
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(
            f"{source} {requested!r} is not a device; use cpu, cuda, cuda:<index>, mps or auto"
        )
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        if not available.cuda_devices:
            raise ValueError(
                f"{source} {requested!r}: no CUDA device is available to this torch; "
                "use cpu (or install a CUDA build of torch and check the driver)"
            )
        if index is not None and int(index) >= available.cuda_devices:
            raise ValueError(
                f"{source} {requested!r}: this machine has {available.cuda_devices} CUDA "
                f"device(s), cuda:0 to cuda:{available.cuda_devices - 1}"
            )
    if kind == "mps" and index is not None:
        raise ValueError(f"{source} {requested!r}: MPS has no index; use mps")
    if kind == "mps" and not available.mps:
        raise ValueError(f"{source} {requested!r}: Apple MPS is not available here; use cpu")
    return spec


def choose_dtype(device: str, *, tiny: bool) -> torch.dtype:
    """fp16 on GPUs (CUDA and MPS both run SD in half precision), fp32 on the CPU and for tiny."""
    if tiny or device == "cpu":
        return torch.float32
    return torch.float16
