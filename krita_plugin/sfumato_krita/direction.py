"""References and regions as Krita holds them (issue 16 item 3), pure: no Krita, no Qt.

krita-ai-diffusion's users expect two things: a *reference* is a control-list entry pointing
at a layer or a picture file, with a weight and a start/end; a *region* is a layer of the
stack (a paint layer, or a group whose merged alpha is the region's shape) with its own
prompt and negative. A reference's *kind* is named as krita-ai-diffusion names its control
types: "Reference" steers the whole model, "Style" only the look, "Composition" only the
layout (``KINDS``). A region's text is stored in the document, in the annotation
``sfumato/regions`` (JSON: the layer's unique id → prompt, negative): Krita saves annotations
and layer ids in the .kra, so the regions survive save and reopen, and renaming or moving a
layer keeps its prompt. The docker's reference list is stored per document the same way, in
``sfumato/references`` (JSON: layer id or file, kind, weight, start, end), so a reopened
.kra — also after a Krita restart — comes back with its references. ``directioncanvas``
reads the pixels; everything that decides is here, tested without Krita.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sfumato.hostdirection import RegionText
from sfumato.protocol import ReferenceKind

REGIONS = "sfumato/regions"  # document annotation: {layer id: {"prompt", "negative"}}
REFERENCES = "sfumato/references"  # document annotation: the reference list, in order
_ALPHA_ZERO = bytes(256)


@dataclass(frozen=True)
class Kind:
    """A reference kind as the docker offers it: ``label`` shown, ``value`` the combo's data
    (the protocol's ``kind``, or "" for the whole model: no ``kind`` sent)."""

    label: str
    kind: ReferenceKind | None
    tip: str

    @property
    def value(self) -> str:
        return kind_value(self.kind)


KINDS = (
    Kind("Reference", None, "the whole picture steers: its look and its layout"),
    Kind("Style", ReferenceKind.STYLE, "only the look (colours, texture, light), not the layout"),
    Kind("Composition", ReferenceKind.CONTENT, "only the layout and subject, not the look"),
)


def kind_of(value: str | None) -> ReferenceKind | None:
    """The kind a combo's data ``value`` stands for; "" (or anything unknown) is the whole
    model, which is also what the server does without a ``kind``."""
    return next((k.kind for k in KINDS if k.value == value), None)


def kind_value(kind: ReferenceKind | None) -> str:
    """The combo's data for ``kind`` (the inverse of :func:`kind_of`)."""
    return kind.value if kind is not None else ""


@dataclass
class ReferenceLayer:
    """A reference in the docker's control list: a layer (``layer_id``) or a picture file
    (``path``), how strongly (``weight``, 0 … 2) and during which part of the denoising
    (``start`` … ``end``, fractions of the steps), steering what (``kind``: None is the
    whole model, see ``KINDS``)."""

    layer_id: str = ""
    path: str = ""
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    kind: ReferenceKind | None = None

    def source(self) -> str:
        return "layer" if self.layer_id else "file"


def alpha_mask(bgra: bytes, width: int, height: int, out_w: int, out_h: int) -> bytes:
    """A region's mask from a layer's BGRA pixels over the job's region (``width × height``,
    row 0 at the top): its alpha, one byte a pixel (soft edges kept), padded with 0 to the
    job's output size ``out_w × out_h`` (the job rounds its sides up to multiples of 8; the
    padding is cropped off the result, where only the shared prompt applies)."""
    if len(bgra) != 4 * width * height:
        raise ValueError(
            f"{len(bgra)} bytes of BGRA for a {width}×{height} region (needs "
            f"{4 * width * height}); read the layer over the job's region"
        )
    if out_w < width or out_h < height:
        raise ValueError(f"the job's {out_w}×{out_h} is smaller than the {width}×{height} region")
    alpha = bgra[3::4]
    pad = b"\x00" * (out_w - width)
    rows = (alpha[y * width : (y + 1) * width] + pad for y in range(height))
    return b"".join(rows) + b"\x00" * (out_w * (out_h - height))


def covers(mask: bytes) -> bool:
    """Whether a mask marks any pixel (an empty region would only cost tokens: not sent)."""
    return bool(mask.translate(_NONZERO_TABLE).strip(b"\x00"))


_NONZERO_TABLE = bytes([0] + [1] * 255)


def region_order(stack: list[str], texts: Mapping[str, RegionText]) -> list[str]:
    """The layer ids that are regions, in the stack's order (top first, as the docker lists
    them): a region with a blank prompt, or whose layer is gone, is left out."""
    return [i for i in stack if i in texts and texts[i].prompt.strip()]


def parse_regions(data: bytes | None) -> dict[str, RegionText]:
    """The document's region texts; anything unreadable (another tool's annotation, a
    damaged file) is an empty set rather than a failed job."""
    if not data:
        return {}
    try:
        raw = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(value.get("prompt"), str):
            negative = value.get("negative", "")
            out[str(key)] = RegionText(
                value["prompt"], negative if isinstance(negative, str) else ""
            )
    return out


def dump_regions(texts: Mapping[str, RegionText]) -> bytes:
    """``texts`` as the annotation stores them (regions with a blank prompt are dropped)."""
    data = {
        k: {"prompt": t.prompt, "negative": t.negative}
        for k, t in sorted(texts.items())
        if t.prompt.strip()
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def region_fields(texts: Mapping[str, RegionText], layer_id: str) -> tuple[str, str]:
    """What the docker's two fields show for ``layer_id``: its prompt and negative, or
    blanks for a layer that is not a region."""
    text = texts.get(layer_id)
    return (text.prompt, text.negative) if text is not None else ("", "")


def set_region(texts: Mapping[str, RegionText], layer_id: str, prompt: str,
               negative: str = "") -> dict[str, RegionText]:  # fmt: skip
    """``texts`` with ``layer_id``'s prompt and negative set; a blank prompt removes the
    region, negative and all (a negative alone steers nothing)."""
    out = dict(texts)
    if prompt.strip():
        out[layer_id] = RegionText(prompt, negative)
    else:
        out.pop(layer_id, None)
    return out


def dump_references(refs: Sequence[ReferenceLayer]) -> bytes:
    """The docker's reference list as the document's annotation stores it, in order."""
    data = [
        {"layer": r.layer_id, "path": r.path, "kind": kind_value(r.kind), "weight": r.weight,
         "start": r.start, "end": r.end}
        for r in refs
    ]  # fmt: skip
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def parse_references(data: bytes | None) -> list[ReferenceLayer]:
    """The document's reference list; an entry that is not one (no layer and no file, a
    damaged or foreign annotation) is left out, and numbers out of range are clamped into
    the docker's fields' ranges, so a reopened document never fails a job over them."""
    try:
        raw = json.loads(bytes(data or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        layer, path = item.get("layer"), item.get("path")
        layer = layer if isinstance(layer, str) else ""
        path = path if isinstance(path, str) and not layer else ""
        if not (layer or path):
            continue
        kind = item.get("kind")
        out.append(ReferenceLayer(
            layer_id=layer, path=path,
            weight=_number(item.get("weight"), 1.0, 2.0), start=_number(item.get("start"), 0.0),
            end=_number(item.get("end"), 1.0), kind=kind_of(kind if isinstance(kind, str) else None),
        ))  # fmt: skip
    return out


def _number(value: object, default: float, top: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return default
    return min(top, max(0.0, float(value)))
