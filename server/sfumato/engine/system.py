"""What torch sees on this machine: its build (CUDA, ROCm or CPU), the GPUs, their memory and
the driver — the facts ``sfumato doctor`` prints and ``welcome.system`` carries in short.

Here because only the engine imports torch. Everything is read, nothing is allocated: probing
a GPU's memory with :func:`torch.cuda.mem_get_info` creates a CUDA context (a few hundred MB
on the device), so it is done only when asked (``memory=True``), once per doctor run or per
engine start. The driver version is not in torch; it comes from the driver's own files
(``/proc/driver/nvidia/version``, ``/sys/module/amdgpu/version``) or ``nvidia-smi``.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .devices import Available, choose_device


@dataclass(frozen=True)
class Gpu:
    """One accelerator torch can use. Sizes in bytes; ``free`` is 0 when not probed."""

    index: int
    name: str
    total: int
    free: int = 0


@dataclass(frozen=True)
class TorchFacts:
    torch: str  # torch.__version__
    build: str  # "cuda", "rocm" or "cpu" (an Apple build reports "cpu" and has mps)
    cuda: str = ""  # the CUDA toolkit torch was built with (torch.version.cuda)
    hip: str = ""  # … or the ROCm/HIP version (torch.version.hip)
    mps: bool = False  # Apple's Metal backend is usable
    gpus: tuple[Gpu, ...] = ()
    driver: str = ""  # the GPU driver's version, "" when it cannot be read
    device: str = ""  # what the engine would run on with the configured device
    device_problem: str = ""  # why the configured device cannot be used (then device is "")
    machine: str = field(default_factory=platform.machine)

    @property
    def accelerated(self) -> bool:
        return self.device.startswith(("cuda", "mps"))

    def device_label(self) -> str:
        """ "cuda:0 NVIDIA GeForce RTX 4090", "mps", "cpu" — what a user recognises."""
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            gpu = next((g for g in self.gpus if g.index == index), None)
            return f"cuda:{index} {gpu.name}" if gpu else self.device
        return self.device

    def vram(self) -> int:
        """Total memory of the device in use, bytes (0: the CPU or MPS's shared memory)."""
        if not self.device.startswith("cuda"):
            return 0
        index = int(self.device.partition(":")[2] or 0)
        return next((g.total for g in self.gpus if g.index == index), 0)


def probe(requested: str | None = None, *, memory: bool = False) -> TorchFacts:
    """The facts for ``requested`` (a --device value; None or "auto": the best present)."""
    hip = getattr(torch.version, "hip", None) or ""
    cuda = getattr(torch.version, "cuda", None) or ""
    build = "rocm" if hip else "cuda" if cuda else "cpu"
    available = Available.probe()
    gpus = []
    for index in range(available.cuda_devices):
        props = torch.cuda.get_device_properties(index)
        free = 0
        if memory:
            try:
                free = int(torch.cuda.mem_get_info(index)[0])
            except RuntimeError:  # a device that cannot make a context now: report it as 0
                free = 0
        gpus.append(Gpu(index, str(props.name), int(props.total_memory), free))
    try:
        device, problem = choose_device(requested, available=available), ""
    except ValueError as exc:
        device, problem = "", str(exc)
    return TorchFacts(
        torch=torch.__version__,
        build=build,
        cuda="" if hip else cuda,
        hip=hip,
        mps=available.mps,
        gpus=tuple(gpus),
        driver=driver_version(build) if gpus or build != "cpu" else "",
        device=device,
        device_problem=problem,
    )


def driver_version(build: str) -> str:
    """The kernel driver's version, from its own files; "" when none answers (no driver
    installed is a fact too: the doctor says so)."""
    if build == "rocm":
        amd = Path("/sys/module/amdgpu/version")
        return _read(amd).strip()
    text = _read(Path("/proc/driver/nvidia/version"))
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
    if match:
        return match.group(1)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        run = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return run.stdout.strip().splitlines()[0] if run.returncode == 0 and run.stdout else ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
