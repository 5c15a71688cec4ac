"""``welcome.system``: the server machine's facts in short (docs/protocol.md 5.1.1) — what
``sfumato doctor`` prints at length, so a plugin can say "cuda:0 RTX 4090, 24 GiB · 3 of 5
models present" and the warnings beside it without anyone opening a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._fields import Reader

MAX_WARNINGS = 16  # a reader keeps this many; a server sends fewer
MAX_TEXT = 500  # characters of one warning or name a reader keeps


@dataclass(frozen=True)
class SystemInfo:
    """``device`` and ``torch`` are "" until the server's engine has loaded (it imports torch
    in the background after the start); ``vram`` is 0 for the CPU and Apple's shared memory."""

    device: str = ""  # "cuda:0 NVIDIA GeForce RTX 4090", "mps", "cpu"
    vram: int = 0  # bytes of the device's own memory
    torch: str = ""  # torch's version and build, "2.5.1+cu124"
    models_present: int = 0  # registry entries whose weights are on the server's disk
    models_missing: int = 0  # … and those a job would fail on with model_unavailable
    warnings: tuple[str, ...] = ()  # each names the problem and the fix (sfumato doctor)

    def to_wire(self) -> dict[str, Any]:
        return {
            "device": self.device, "vram": self.vram, "torch": self.torch,
            "models_present": self.models_present, "models_missing": self.models_missing,
            "warnings": list(self.warnings),
        }  # fmt: skip

    @classmethod
    def from_wire(cls, r: Reader) -> SystemInfo:
        warnings = r.items("warnings", [])
        return cls(
            device=r.text("device", "")[:MAX_TEXT],
            vram=r.integer("vram", 0, lo=0, hi=2**63 - 1),
            torch=r.text("torch", "")[:MAX_TEXT],
            models_present=r.integer("models_present", 0, lo=0, hi=2**31),
            models_missing=r.integer("models_missing", 0, lo=0, hi=2**31),
            warnings=tuple(str(w)[:MAX_TEXT] for w in warnings[:MAX_WARNINGS]),
        )

    def line(self) -> str:
        """One short line for a plugin's status area."""
        parts = []
        if self.device:
            vram = f", {self.vram / 2**30:.0f} GiB" if self.vram else ""
            parts.append(f"{self.device}{vram}")
        else:
            parts.append("device not known yet (the engine is loading)")
        if self.torch:
            parts.append(f"torch {self.torch}")
        total = self.models_present + self.models_missing
        if total:
            parts.append(f"{self.models_present} of {total} models present")
        return " · ".join(parts)
