"""The job's parameters (``params`` of a job frame, docs/protocol.md 4.1) and the tasks:
what each field may hold, the size and strength rules, and the live-job rule. Split from
messages.py, which re-exports every name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._fields import Reader
from .conditioning import LoraRef, Tile, read_loras
from .errors import ErrorCode, ProtocolError
from .limits import Limits
from .multiview import Paint, read_bounds
from .training import TrainParams

SEED_MAX = 2**32 - 1


class Task(str, Enum):
    GENERATE = "generate"  # txt2img
    REFINE = "refine"  # img2img with strength
    INPAINT = "inpaint"  # image + mask, 255 = regenerate
    OUTPAINT = "outpaint"  # image grown by params.expand; the new margins are generated
    UPSCALE = "upscale"  # image × params.scale, by tiled img2img with blended overlaps
    MULTIVIEW = "multiview"  # views painted in turn and baked into a UV texture (multiview.py)
    TRAIN = "train"  # a LoRA trained on a dataset, added to the registry unapproved (training.py)


def _expand(r: Reader) -> tuple[int, int, int, int]:
    # nil is absent (protocol.md §2), like every optional field
    values = r.integers("expand", lo=0, hi=2**16) if r.raw("expand", None) is not None else (0,) * 4
    if len(values) != 4:
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"params.expand must be [left, top, right, bottom] pixels, got {len(values)} numbers",
            field="params.expand",
        )
    return (values[0], values[1], values[2], values[3])


@dataclass(frozen=True)
class JobParams:
    prompt: str = ""
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    guidance: float = 7.0
    seed: int | None = None  # None: the server picks one and reports it
    # every task but generate: 1 replaces the image; int(steps × strength) ≥ 1 (denoising_steps)
    strength: float = 0.75
    variants: int = 1  # images with seeds seed, seed+1, …
    model: str | None = None  # registry name; None: the server's default
    loras: tuple[LoraRef, ...] = ()
    tile: Tile = Tile.NONE
    preview_every: int = 0  # a preview image every N steps; 0: none
    expand: tuple[int, int, int, int] = (0, 0, 0, 0)  # outpaint margins: left, top, right, bottom
    scale: int = 2  # upscale factor
    files: bool = False  # also return the stored PNG files (with content credentials)
    paint: Paint = Paint.GENERATE  # multiview: position paints each view's world positions
    bounds: tuple[float, ...] = ()  # multiview position paint: min xyz, max xyz; (): the map's
    train: TrainParams | None = None  # task train: dataset, LoRA name, options
    # capability live: a live job of (this identity, live_key) supersedes its earlier ones
    live: bool = False
    live_key: str | None = None

    def _write(self) -> dict[str, Any]:
        out = {
            "prompt": self.prompt, "negative": self.negative, "width": self.width,
            "height": self.height, "steps": self.steps, "guidance": self.guidance,
            "strength": self.strength, "variants": self.variants,
        }  # fmt: skip
        if self.seed is not None:
            out["seed"] = self.seed
        if self.model is not None:
            out["model"] = self.model
        if self.loras:
            out["loras"] = [lora._write() for lora in self.loras]
        if self.tile is not Tile.NONE:
            out["tile"] = self.tile.value
        if self.preview_every:
            out["preview_every"] = self.preview_every
        if any(self.expand):
            out["expand"] = list(self.expand)
        if self.scale != 2:
            out["scale"] = self.scale
        if self.files:
            out["files"] = True
        if self.paint is not Paint.GENERATE:
            out["paint"] = self.paint.value
        if self.bounds:
            out["bounds"] = list(self.bounds)
        if self.train is not None:
            out["train"] = self.train.to_wire()
        if self.live:
            out["live"] = True
        if self.live_key is not None:
            out["live_key"] = self.live_key
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> JobParams:
        # Defaults never exceed what this server allows: a side of 512, or max_image_side
        # rounded down to a multiple of 8 where that is smaller.
        side = min(512, limits.max_image_side // 8 * 8)
        want = f"a multiple of 8 from 64 to max_image_side ({limits.max_image_side})"
        params = cls(
            prompt=r.text("prompt", "", max_len=limits.max_prompt_chars),
            negative=r.text("negative", "", max_len=limits.max_prompt_chars),
            width=r.integer("width", side, lo=8, hi=2**31, want=want),
            height=r.integer("height", side, lo=8, hi=2**31, want=want),
            steps=r.integer("steps", min(20, limits.max_steps), lo=1, hi=limits.max_steps),
            guidance=r.number("guidance", 7.0, lo=0.0, hi=50.0),
            seed=r.integer("seed", None, lo=0, hi=SEED_MAX),
            strength=r.number("strength", 0.75, lo=0.0, hi=1.0),
            variants=r.integer("variants", 1, lo=1, hi=limits.max_variants),
            model=r.text("model", None, max_len=200),
            loras=read_loras(r),
            tile=r.choice("tile", Tile, Tile.NONE),
            preview_every=r.integer("preview_every", 0, lo=0, hi=limits.max_steps),
            expand=_expand(r),
            scale=r.integer("scale", 2, lo=2, hi=4),
            files=r.boolean("files", False),
            paint=r.choice("paint", Paint, Paint.GENERATE),
            bounds=read_bounds(r),
            train=None if (t := r.submap("train", None)) is None else TrainParams.read(t),
            live=r.boolean("live", False),
            live_key=r.text("live_key", None, max_len=LIVE_KEY_CHARS),
        )
        check_live(params.live, params.live_key)
        return params

    def check_strength(self, task: Task, limits: Limits) -> None:
        """Every task but generate denoises ``int(steps × strength)`` steps (as diffusers
        computes it); zero would run nothing, so it is refused before the job queues."""
        if task is Task.GENERATE or denoising_steps(self.steps, self.strength) >= 1:
            return
        fix = f"raise params.strength to at least {min_strength(self.steps)}"
        steps = min_steps(self.strength, limits.max_steps)
        if steps is not None:
            fix += f", or params.steps to at least {steps}"
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"params.strength {self.strength:g} with params.steps {self.steps} gives no "
            f"denoising step ({task.value} runs int(steps × strength) steps, at least 1); {fix}",
            field="params.strength",
        )

    def check_size(self, limits: Limits) -> None:
        """The requested output size (generate only: other tasks keep their image's size)."""
        side = limits.max_image_side
        for name in ("width", "height"):
            value = getattr(self, name)
            if value > side:
                raise ProtocolError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"params.{name} {value} exceeds this server's max_image_side {side}; "
                    "generate smaller and upscale",
                    field=f"params.{name}",
                )
            if value % 8 or value < 64:
                raise ProtocolError(
                    ErrorCode.BAD_FIELD,
                    f"params.{name} {value} must be a multiple of 8 and at least 64 "
                    f"(try {max(64, round(value / 8) * 8)})",
                    field=f"params.{name}",
                )


LIVE_KEY_CHARS = 200


def check_live(live: bool, key: str | None) -> None:
    """A live job names what it supersedes (protocol.md 4.2.7); a key alone means nothing."""
    if live and not key:
        raise _bad(
            "params.live needs params.live_key: a short name for what this live job shows "
            "(e.g. the document or 'blender:<scene>'); a new live job of the same key "
            "supersedes the last",
            "params.live_key",
        )
    if key is not None and not live:
        raise _bad("params.live_key is for live jobs; add params.live = true or leave it out",
                   "params.live_key")  # fmt: skip


def denoising_steps(steps: int, strength: float) -> int:
    """How many steps a task that starts from an image runs: diffusers' own formula."""
    return min(int(steps * strength), steps)


def min_strength(steps: int) -> float:
    """The smallest short decimal strength that gives ``steps`` at least one step."""
    for digits in range(2, 10):
        scale = 10**digits
        strength = min(1.0, math.ceil(scale / steps) / scale)
        if denoising_steps(steps, strength) >= 1:
            return strength
    return 1.0


def min_steps(strength: float, most: int) -> int | None:
    """The fewest steps, up to ``most``, that give ``strength`` one step; None if none do."""
    if not strength * most >= 1:  # also 0, and the subnormals whose 1/strength overflows
        return None
    steps = max(1, math.ceil(1 / strength))
    while steps <= most and denoising_steps(steps, strength) < 1:
        steps += 1
    return steps if steps <= most else None


def _bad(message: str, field: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, message, field=field)
