"""What conditions a job beyond its prompt: control images, LoRAs, tiling (docs/protocol.md,
"Conditioning"). Announced by the capabilities ``control``, ``lora`` and ``tile``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._fields import BlobWriter, Reader
from .arrays import Array, DType
from .errors import ErrorCode, ProtocolError
from .limits import Limits

MAX_CONTROLS = 4
MAX_LORAS = 8


class ControlKind(str, Enum):
    DEPTH = "depth"
    NORMAL = "normal"
    CANNY = "canny"
    LINEART = "lineart"
    SCRIBBLE = "scribble"
    POSE = "pose"
    SHUFFLE = "shuffle"


class Tile(str, Enum):
    NONE = "none"
    XY = "xy"  # seamless in both directions: textures, materials
    X = "x"  # wraps left ↔ right only: 360° panoramas (2:1)


# What each kind accepts as `image`: raw data the engine converts, or a ready control map.
_RAW = {
    ControlKind.DEPTH: ((DType.FLOAT32, DType.FLOAT16), (1,)),  # linear distance from camera plane
    ControlKind.NORMAL: ((DType.FLOAT32, DType.FLOAT16), (3,)),  # unit vectors, camera space
}
_MAP = ((DType.UINT8,), (1, 3, 4))  # a ready control map (or a picture, with `preprocess`)


@dataclass(frozen=True)
class Control:
    """One ControlNet input. For ``depth`` given as float distances, ``mask`` marks the
    background (255 = no surface there; it becomes black in the depth map)."""

    kind: ControlKind
    image: Array
    mask: Array | None = None
    strength: float = 1.0
    start: float = 0.0  # fraction of the denoising steps where the control starts acting
    end: float = 1.0  # … and stops
    preprocess: bool = False  # run the server's detector for `kind` on `image` first

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value, "image": w.ref(self.image), "strength": self.strength,
            "start": self.start, "end": self.end, "preprocess": self.preprocess,
        }  # fmt: skip
        if self.mask is not None:
            out["mask"] = w.ref(self.mask)
        return out

    @classmethod
    def _read(cls, r: Reader) -> Control:
        control = cls(
            kind=r.choice("kind", ControlKind),
            image=r.array("image"),
            mask=r.array("mask", None),
            strength=r.number("strength", 1.0, lo=0.0, hi=2.0),
            start=r.number("start", 0.0, lo=0.0, hi=1.0),
            end=r.number("end", 1.0, lo=0.0, hi=1.0),
            preprocess=r.boolean("preprocess", False),
        )
        r.finish()
        return control

    def check(self, name: str, limits: Limits) -> None:
        a = self.image
        if max(a.height, a.width) > limits.max_image_side:
            raise ProtocolError(
                ErrorCode.IMAGE_TOO_LARGE,
                f"{name}.image is {a.width}×{a.height}; the limit is {limits.max_image_side} a side",
                field=f"{name}.image",
            )
        raw = _RAW.get(self.kind)
        is_raw = raw is not None and a.dtype in raw[0]
        dtypes, channels = raw if is_raw and raw is not None else _MAP
        if a.dtype not in dtypes or a.channels not in channels:
            want = f"uint8 with {' or '.join(map(str, _MAP[1]))} channels (a control map)"
            if raw is not None:
                want = f"float32/float16 with {raw[1][0]} channel(s), or {want}"
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"{name}.image for {self.kind.value} must be {want}; got {a.dtype.value} {list(a.shape)}",
                field=f"{name}.image",
            )
        if is_raw and self.preprocess:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"{name}.preprocess needs a picture (uint8), not raw {self.kind.value} data",
                field=f"{name}.preprocess",
            )
        if self.mask is not None:
            m = self.mask
            if not (self.kind is ControlKind.DEPTH and is_raw):
                raise ProtocolError(
                    ErrorCode.BAD_FIELD,
                    f"{name}.mask is only for depth given as distances",
                    field=f"{name}.mask",
                )
            if m.dtype is not DType.UINT8 or m.channels != 1 or m.shape[:2] != a.shape[:2]:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"{name}.mask must be uint8 {a.height}×{a.width}×1 like its image, got "
                    f"{m.dtype.value} {list(m.shape)}",
                    field=f"{name}.mask",
                )
        if self.start >= self.end:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"{name}.start {self.start} must be below {name}.end {self.end}",
                field=f"{name}.start",
            )


@dataclass(frozen=True)
class LoraRef:
    name: str  # registry name
    weight: float = 1.0

    def _write(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight}

    @classmethod
    def _read(cls, r: Reader) -> LoraRef:
        lora = cls(r.text("name", max_len=200), r.number("weight", 1.0, lo=-4.0, hi=4.0))
        r.finish()
        return lora


def _elements(r: Reader, key: str, most: int, where: str) -> list[Reader]:
    count = len(r.items(key, []))
    if count > most:
        raise ProtocolError(
            ErrorCode.BAD_FIELD, f"{where} has {count} entries; at most {most}", field=where
        )
    return [r.element(key, i) for i in range(count)]


def read_controls(r: Reader) -> tuple[Control, ...]:
    return tuple(
        Control._read(e) for e in _elements(r, "controls", MAX_CONTROLS, "inputs.controls")
    )


def read_loras(r: Reader, where: str = "params.loras") -> tuple[LoraRef, ...]:
    """``where``: the list's name in errors (a region's LoRAs are ``inputs.regions[i].loras``)."""
    loras = tuple(LoraRef._read(e) for e in _elements(r, "loras", MAX_LORAS, where))
    names = [lora.name for lora in loras]
    if len(set(names)) != len(names):
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"{where} names a LoRA twice; give each once",
            field=where,
        )
    return loras
