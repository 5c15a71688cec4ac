"""Art direction beyond one prompt: reference images and regions (docs/protocol.md 4.2.6).

A brand's look comes from pictures (``inputs.references``, capability ``reference``: an
IP-Adapter conditions the model on each picture) and a scene has parts that need their own
words (``inputs.regions``, capability ``regions``: each region's prompt conditions only the
pixels of its mask). Both are plain arrays and strings on the wire; what the engine does with
them is stated in docs/protocol.md, so a host needs no ML to build them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._fields import BlobWriter, Reader
from .arrays import Array, DType
from .conditioning import MAX_LORAS, LoraRef, read_loras
from .errors import ErrorCode, ProtocolError
from .limits import Limits

MAX_REFERENCES = 4
MAX_REGIONS = 8


class ReferenceKind(str, Enum):
    """Which part of the model a reference steers (absent: all of it)."""

    STYLE = "style"  # the adapter acts in the up (decoder) blocks only: colours, texture, look
    CONTENT = "content"  # … in the down (encoder) blocks only: layout, subject


def _bad(message: str, field: str, code: ErrorCode = ErrorCode.BAD_FIELD) -> ProtocolError:
    return ProtocolError(code, message, field=field)


def _count(r: Reader, key: str, most: int, what: str) -> int:
    count = len(r.items(key, []))
    if count > most:
        raise _bad(f"inputs.{key} has {count} {what}; at most {most}: drop some", f"inputs.{key}")
    return count


@dataclass(frozen=True)
class Reference:
    """One reference picture: ``weight`` is the adapter's scale, active from ``start`` to
    ``end`` (fractions of the denoising steps, like a control's)."""

    image: Array
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    kind: ReferenceKind | None = None

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": w.ref(self.image), "weight": self.weight, "start": self.start,
            "end": self.end,
        }  # fmt: skip
        if self.kind is not None:
            out["kind"] = self.kind.value
        return out

    @classmethod
    def _read(cls, r: Reader) -> Reference:
        reference = cls(
            image=r.array("image"),
            weight=r.number("weight", 1.0, lo=0.0, hi=2.0),
            start=r.number("start", 0.0, lo=0.0, hi=1.0),
            end=r.number("end", 1.0, lo=0.0, hi=1.0),
            kind=r.choice("kind", ReferenceKind, None),
        )
        r.finish()
        return reference

    def check(self, name: str, limits: Limits) -> None:
        a = self.image
        if a.dtype is not DType.UINT8 or a.channels not in (3, 4):
            raise _bad(
                f"{name}.image must be a uint8 RGB or RGBA picture, got {a.dtype.value} "
                f"{list(a.shape)}; send the picture's 8-bit pixels",
                f"{name}.image",
                ErrorCode.BAD_ARRAY,
            )
        if max(a.height, a.width) > limits.max_image_side:
            raise _bad(
                f"{name}.image is {a.width}×{a.height}; this server accepts at most "
                f"{limits.max_image_side} pixels a side, scale it down (the encoder sees 224²)",
                f"{name}.image",
                ErrorCode.IMAGE_TOO_LARGE,
            )
        if self.start >= self.end:
            raise _bad(
                f"{name}.start {self.start} must be below {name}.end {self.end}", f"{name}.start"
            )


@dataclass(frozen=True)
class Region:
    """One area with its own words: ``mask`` (255 = this region) at the job's output size."""

    mask: Array
    prompt: str
    negative: str = ""
    loras: tuple[LoraRef, ...] = ()

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {"mask": w.ref(self.mask), "prompt": self.prompt}
        if self.negative:
            out["negative"] = self.negative
        if self.loras:
            out["loras"] = [lora._write() for lora in self.loras]
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Region:
        region = cls(
            mask=r.array("mask"),
            prompt=r.text("prompt", max_len=limits.max_prompt_chars),
            negative=r.text("negative", "", max_len=limits.max_prompt_chars),
            loras=read_loras(r, r._name("loras")),
        )
        r.finish()
        return region

    def check(self, name: str, size: tuple[int, int]) -> None:
        """``size``: the job's output (width, height), which every region mask covers."""
        if not self.prompt.strip():
            raise _bad(
                f"{name}.prompt is empty; give the region its own words (what is in it), or "
                "drop the region",
                f"{name}.prompt",
            )
        m = self.mask
        if m.dtype is not DType.UINT8 or m.channels != 1:
            raise _bad(
                f"{name}.mask must be uint8 with 1 channel (255 = this region), got "
                f"{m.dtype.value} {list(m.shape)}",
                f"{name}.mask",
                ErrorCode.BAD_ARRAY,
            )
        if (m.width, m.height) != size:
            raise _bad(
                f"{name}.mask is {m.width}×{m.height} but the job's output is "
                f"{size[0]}×{size[1]}; send every region mask at the output size",
                f"{name}.mask",
                ErrorCode.BAD_ARRAY,
            )


def read_references(r: Reader) -> tuple[Reference, ...]:
    count = _count(r, "references", MAX_REFERENCES, "references")
    return tuple(Reference._read(r.element("references", i)) for i in range(count))


def read_regions(r: Reader, limits: Limits) -> tuple[Region, ...]:
    count = _count(r, "regions", MAX_REGIONS, "regions")
    return tuple(Region._read(r.element("regions", i), limits) for i in range(count))


def region_loras(shared: tuple[LoraRef, ...], regions: tuple[Region, ...]) -> tuple[LoraRef, ...]:
    """The LoRAs a job with regions runs with. The reference engine applies region LoRAs to
    the whole image (a LoRA changes the model's weights, not one area's conditioning): the
    job's own, then each region's in order, a name given twice refused."""
    out = list(shared)
    seen = {lora.name for lora in shared}
    for n, region in enumerate(regions):
        for k, lora in enumerate(region.loras):
            if lora.name in seen:
                raise _bad(
                    f"inputs.regions[{n}].loras[{k}] names {lora.name!r}, which params.loras or "
                    "an earlier region already uses; region LoRAs act on the whole image, so "
                    "give each LoRA once",
                    f"inputs.regions[{n}].loras[{k}].name",
                )
            seen.add(lora.name)
            out.append(lora)
    if len(out) > MAX_LORAS:
        raise _bad(
            f"params.loras and the regions' loras name {len(out)} LoRAs together; at most "
            f"{MAX_LORAS} per job (region LoRAs act on the whole image): drop some",
            "inputs.regions",
        )
    return tuple(out)
