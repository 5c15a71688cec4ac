"""Reference images and regions as both hosts build them (docs/protocol.md 4.2.6).

Host-neutral, standard library and the protocol only (Debian's Krita has no numpy), shipped
in the Blender wheel and Krita's _vendor. Krita has layers (a paint layer's alpha or a
group's coverage is a region's mask; a layer or a file is a reference), Blender has passes
(the object index pass gives each object's mask; an image datablock is a reference); both
hand raw 8-bit rows (top row first) here and get the protocol's :class:`Reference` and
:class:`Region`, checked against the job before anything is sent, so a host shows the same
error text the server would. Scaling stays in the host, which has a resampler (QImage.scaled,
Image.scale): :func:`reference_size` says to what.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .protocol import Array, DType, Job, Limits, LoraRef, Reference, ReferenceKind, Region

# The encoder sees a 224² centre square; a larger picture only costs bandwidth.
REFERENCE_SIDE = 512


@dataclass(frozen=True)
class RegionText:
    """What a host stores per region (a Krita layer's or a Blender object's own property)."""

    prompt: str
    negative: str = ""
    loras: tuple[LoraRef, ...] = ()


def reference_size(width: int, height: int, side: int = REFERENCE_SIDE) -> tuple[int, int]:
    """(width, height) to scale a reference picture to before :func:`reference`: its long
    side at most ``side``, the aspect kept, never enlarged."""
    long = max(width, height)
    if long <= side:
        return width, height
    return max(1, round(width * side / long)), max(1, round(height * side / long))


def reference(
    rgb: bytes | bytearray | memoryview,
    width: int,
    height: int,
    channels: int = 3,
    *,
    weight: float = 1.0,
    start: float = 0.0,
    end: float = 1.0,
    kind: ReferenceKind | None = None,
) -> Reference:
    """A reference from 8-bit RGB or RGBA rows (straight alpha, top row first)."""
    _check_size(rgb, width, height, channels, "the reference picture")
    return Reference(Array(DType.UINT8, (height, width, channels), rgb), weight, start, end, kind)


def region(
    mask: bytes | bytearray | memoryview, width: int, height: int, text: RegionText
) -> Region:
    """A region from one 8-bit coverage byte per pixel (255 = in the region), top row first."""
    _check_size(mask, width, height, 1, "the region mask")
    return Region(Array(DType.UINT8, (height, width, 1), mask), text.prompt, text.negative,
                  text.loras)  # fmt: skip


def regions_from_index(
    index: bytes | bytearray | memoryview | array[int],
    width: int,
    height: int,
    texts: Mapping[int, RegionText],
) -> tuple[Region, ...]:
    """One region per object id in ``texts`` that the index pass shows (one id per pixel:
    bytes for ids < 256, or an ``array('H')`` / ``array('i')``), in id order. An id that is not
    visible, or whose prompt is blank, gives no region (it would only cost tokens)."""
    if len(index) != width * height:
        raise ValueError(
            f"the index pass has {len(index)} values but the view is {width}×{height}; "
            "send one object id per pixel"
        )
    small = isinstance(index, (bytes, bytearray, memoryview))
    out = []
    for key in sorted(texts):
        if not texts[key].prompt.strip():
            continue
        if small and 0 <= key < 256:
            table = bytes(255 if v == key else 0 for v in range(256))
            mask = bytes(index).translate(table)
        else:
            mask = bytes(255 if v == key else 0 for v in index)
        if 255 in mask:
            out.append(region(mask, width, height, texts[key]))
    return tuple(out)


def directed(
    job: Job,
    references: tuple[Reference, ...] = (),
    regions: tuple[Region, ...] = (),
    limits: Limits | None = None,
) -> Job:
    """``job`` with these references and regions, checked as the server will: raises the
    protocol's error naming the field and the fix (more than 4 references or 8 regions, a
    mask not at the job's output size, an empty prompt), which a host shows as it is."""
    out = replace(job, references=references, regions=regions)
    out.check(limits or Limits())
    return out


def _check_size(data: bytes | bytearray | memoryview, width: int, height: int, channels: int,
                what: str) -> None:  # fmt: skip
    if memoryview(data).nbytes != width * height * channels:
        raise ValueError(
            f"{what} has {memoryview(data).nbytes} bytes but {width}×{height}×{channels} needs "
            f"{width * height * channels}; send 8-bit rows of that size"
        )
