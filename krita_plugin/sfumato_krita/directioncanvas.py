"""Krita's side of references and regions: layers and files → protocol inputs, and the
region texts kept in the document (``direction`` decides; this only reads and writes).

A reference layer is read over the whole canvas (a reference is a picture, not a part of
the job's region) composited over white, a file through QImage; both are scaled down by
Qt to ``hostdirection.reference_size``. A region's mask is the layer's (or the group's
merged) alpha over the job's region, at the job's size and position.
"""

from __future__ import annotations

from typing import Any

from sfumato.hostdirection import RegionText, reference, reference_size, region
from sfumato.protocol import Reference, Region

from . import canvas
from .direction import (
    REFERENCES,
    REGIONS,
    ReferenceLayer,
    alpha_mask,
    covers,
    dump_references,
    dump_regions,
    parse_references,
    parse_regions,
    region_order,
)
from .jobs import PluginError, Rect, round_up8
from .qt import QByteArray, QColor, QImage, Qt


def read_texts(doc: Any) -> dict[str, RegionText]:
    if REGIONS not in doc.annotationTypes():
        return {}
    return parse_regions(bytes(doc.annotation(REGIONS)))


def write_texts(doc: Any, texts: dict[str, RegionText]) -> None:
    """Store the region prompts with the document (saved in the .kra; marks it modified)."""
    doc.setAnnotation(REGIONS, "Sfumato: the prompt of each region layer",
                      QByteArray(dump_regions(texts)))  # fmt: skip


def stored_references(doc: Any) -> list[ReferenceLayer] | None:
    """The document's reference list (None: it never had one stored)."""
    if REFERENCES not in doc.annotationTypes():
        return None
    return parse_references(bytes(doc.annotation(REFERENCES)))


def store_references(doc: Any, refs: list[ReferenceLayer]) -> None:
    """Keep the docker's reference list with the document (saved in the .kra); unchanged (or
    empty where none was kept), the document is not touched (storing marks it modified)."""
    data = dump_references(refs)
    kept = bytes(doc.annotation(REFERENCES)) if REFERENCES in doc.annotationTypes() else None
    if data == kept or (kept is None and not refs):  # an image opened or made stays unmodified
        return
    doc.setAnnotation(REFERENCES, "Sfumato: the docker's reference layers and files",
                      QByteArray(data))  # fmt: skip


def read_regions(doc: Any, r: Rect) -> tuple[Region, ...]:
    """One region per layer with a prompt, top of the stack first: its alpha over ``r``
    padded to the job's size; a region whose layer is empty there is not sent."""
    texts = read_texts(doc)
    stack = [i for i, _ in canvas.layers(doc)]
    out_w, out_h = round_up8(r.width), round_up8(r.height)
    regions = []
    for layer_id in region_order(stack, texts):
        node = canvas.find_node(doc, layer_id)
        raw = bytes(node.projectionPixelData(r.x, r.y, r.width, r.height))
        mask = alpha_mask(raw, r.width, r.height, out_w, out_h)
        if covers(mask):
            regions.append(region(mask, out_w, out_h, texts[layer_id]))
    return tuple(regions)


def read_references(doc: Any, refs: list[ReferenceLayer]) -> tuple[Reference, ...]:
    out = []
    for ref in refs:
        if ref.layer_id:
            node = canvas.find_node(doc, ref.layer_id)
            if node is None:
                raise PluginError(
                    "a reference layer was deleted; pick another layer or remove the reference"
                )
            whole = Rect(0, 0, doc.width(), doc.height())
            picture = canvas.read_layer_rgb(doc, node, whole, QColor(255, 255, 255))
            h, w, _ = picture.shape
            image = QImage(bytes(picture.data), w, h, 3 * w, QImage.Format_RGB888).copy()
        else:
            image = QImage(ref.path)
            if image.isNull():
                raise PluginError(
                    f"the reference file {ref.path!r} could not be read as a picture; pick a "
                    "PNG or JPEG file, or remove the reference"
                )
        rgb, w, h = _rgb(image)
        out.append(reference(rgb, w, h, weight=ref.weight, start=ref.start, end=ref.end,
                             kind=ref.kind))  # fmt: skip
    return tuple(out)


def _rgb(image: Any) -> tuple[bytes, int, int]:
    """A QImage as tightly packed RGB rows, scaled down to the reference size."""
    w, h = reference_size(image.width(), image.height())
    if (w, h) != (image.width(), image.height()):
        image = image.scaled(w, h, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    image = image.convertToFormat(QImage.Format_RGB888)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    stride, row, raw = image.bytesPerLine(), 3 * w, bytes(bits)
    return b"".join(raw[y * stride : y * stride + row] for y in range(h)), w, h
