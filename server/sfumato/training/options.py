"""Training options and their defaults per model family, checked before torch is imported.

The defaults follow the diffusers text-to-image LoRA recipes and what studios report working
for a brand style on a few dozen images: rank 16 (alpha = rank, so the LoRA's scale is 1),
AdamW at 1e-4, constant schedule, gradient norm clipped at 1. SD1.5 trains at 512², SDXL at
1024² (their native sizes) and SDXL, with twice the attention layers, gets more steps; the
tiny families train at 64² so a test takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ..protocol import SfumatoError


class OptionError(SfumatoError, ValueError):
    """A training option out of range; the message names the option (its CLI flag) and the fix."""


@dataclass(frozen=True)
class TrainOptions:
    rank: int = 16
    alpha: int = 16
    steps: int = 1000
    learning_rate: float = 1e-4
    seed: int = 0
    resolution: int = 512  # images are resized (short side) and centre-cropped to this square
    batch_size: int = 1
    checkpoint_every: int = 100  # steps; a checkpoint is also written when training is cancelled
    max_grad_norm: float = 1.0

    def check(self) -> TrainOptions:
        """Types and ranges, each error naming the flag; returns self."""
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-").replace("learning-rate", "lr")
            integer = f.type in ("int", int)
            if (type(value) is not int) if integer else (type(value) not in (int, float)):
                raise OptionError(
                    f"{flag} must be {'an integer' if integer else 'a number'}, got {value!r}"
                )
            if not math.isfinite(value):
                raise OptionError(f"{flag} must be a finite number, got {value!r}")
            if integer and value < (0 if f.name == "seed" else 1):
                least = "0 or more" if f.name == "seed" else "at least 1"
                raise OptionError(f"{flag} must be {least}, got {value!r}")
            if not integer and value <= 0:
                raise OptionError(f"{flag} must be greater than 0, got {value!r}")
        if self.seed > 2**32 - 1:
            raise OptionError(f"--seed must be at most {2**32 - 1}, got {self.seed}")
        if self.resolution % 8:
            raise OptionError(
                f"--resolution must be a multiple of 8 (the VAE's scale), got {self.resolution}; "
                f"use {max(8, self.resolution // 8 * 8)}"
            )
        if self.learning_rate > 1:
            raise OptionError(
                f"--lr {self.learning_rate:g} is far too high for a LoRA (it diverges); use 1e-4"
            )
        return self


DEFAULTS: dict[str, TrainOptions] = {
    "sd15": TrainOptions(resolution=512, steps=1000),
    "sdxl": TrainOptions(resolution=1024, steps=1500),
    "tiny": TrainOptions(resolution=64, steps=100, rank=4, alpha=4, checkpoint_every=10),
}


def defaults_for(family: str, *, tiny: bool = False, **given: Any) -> TrainOptions:
    """The family's defaults with the options the user ``given`` (None: keep the default)."""
    if not tiny and family not in DEFAULTS:
        raise OptionError(
            f"training an {family} LoRA is not supported yet; train on an sd15 or sdxl base "
            "(--base <registry name>, see `sfumato models`)"
        )
    base = DEFAULTS["tiny" if tiny else family]
    return replace(base, **{k: v for k, v in given.items() if v is not None}).check()
