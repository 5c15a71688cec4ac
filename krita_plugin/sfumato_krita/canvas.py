"""The one place where Krita's pixels become protocol arrays and back.

Krita's ``pixelData`` of an 8-bit RGBA document is BGRA, row 0 at the top, and the selection's
is one byte a pixel (255 = selected, soft edges in between); the protocol wants RGB(A) and a
1-channel mask. Conversions are slice assignments on ``bytearray`` (C speed, no numpy: Debian's
Krita has none). Everything here takes Krita objects as arguments: no module-level state.

The wire is 8-bit sRGB. A document in another profile or depth of RGB/Alpha (linear sRGB,
ACEScg, 16-bit, float) is converted by Krita's colour engine in a temporary document: to sRGB
for what is sent, back to the document's space for the layers that come back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from krita import Krita

from sfumato.protocol import Array, DType, Task

from .jobs import (
    TASKS,
    CanvasInput,
    ControlInput,
    Mode,
    Placement,
    PluginError,
    Rect,
    region_for,
)
from .model import Settings
from .qt import QByteArray, QColor, QImage, QPainter

HISTORY = "sfumato/history"  # document annotation: JSON list of finished jobs


def bgra_to_rgba(data: bytes) -> bytes:
    out = bytearray(data)
    out[0::4], out[2::4] = data[2::4], data[0::4]
    return bytes(out)


def rgb_to_bgra(rgb: bytes, alpha: bytes | None) -> bytes:
    """RGB plus an alpha plane (None: opaque) → Krita's BGRA. Fully transparent pixels get
    colour 0 too: no hidden colour resurfaces when someone later locks or fills the alpha,
    and Krita stores all-zero tiles as its default tile (small files)."""
    n = len(rgb) // 3
    out = bytearray(4 * n)
    out[0::4], out[1::4], out[2::4] = rgb[2::3], rgb[1::3], rgb[0::3]
    if alpha is None:
        out[3::4] = b"\xff" * n
        return bytes(out)
    out[3::4] = alpha
    keep = alpha.translate(_NONZERO)  # 0 stays 0, anything else becomes 0xff
    keep4 = bytearray(4 * n)
    keep4[0::4] = keep4[1::4] = keep4[2::4] = keep4[3::4] = keep
    masked = int.from_bytes(out, "little") & int.from_bytes(keep4, "little")
    return masked.to_bytes(4 * n, "little")


_NONZERO = bytes([0] + [255] * 255)


# --------------------------------------------------------------------------- colour

# The wire is sRGB (docs/protocol.md): 8-bit RGBA in one of these is sent as it is.
SRGB = "sRGB-elle-V2-srgbtrc.icc"  # Krita's default profile for new RGB images
SRGB_PROFILES = frozenset({SRGB, "sRGB built-in", "sRGB IEC61966-2.1"})
WIRE = ("RGBA", "U8", SRGB)


def space(doc: Any) -> tuple[str, str, str]:
    return doc.colorModel(), doc.colorDepth(), doc.colorProfile()


def is_wire(doc: Any) -> bool:
    model, depth, profile = space(doc)
    return (model, depth) == ("RGBA", "U8") and profile in SRGB_PROFILES


def check_document(doc: Any) -> None:
    """RGB/Alpha of any depth and profile is converted to sRGB for the wire and back
    (issue 18 item 2); other colour models are refused with what to do."""
    model, depth, profile = space(doc)
    if model != "RGBA":
        raise PluginError(
            f"this image is {model}/{depth} ({profile}); Sfumato sends RGB pictures and "
            "converts RGB/Alpha of any depth and profile itself, but not this colour model: "
            "use Image ▸ Convert Image Color Space… to RGB/Alpha (keep the depth and profile)"
        )


def to_wire(doc: Any, data: bytes, width: int, height: int) -> bytes:
    """Pixels in ``doc``'s colour space → 8-bit sRGB BGRA (what the artist sees, as the
    model must see it: a linear-light document's 128 is the sRGB 188 on screen)."""
    if is_wire(doc):
        return data
    return convert(data, width, height, space(doc), WIRE)


def from_wire(doc: Any, bgra: bytes, width: int, height: int) -> bytes:
    """8-bit sRGB BGRA → pixels in ``doc``'s colour space, to write into one of its layers."""
    if is_wire(doc):
        return bgra
    return convert(bgra, width, height, WIRE, space(doc))


def convert(
    data: bytes, width: int, height: int, src: tuple[str, str, str], dst: tuple[str, str, str]
) -> bytes:
    """``data`` converted by Krita's own colour engine (LCMS, the document's rendering
    intent) in a temporary document, closed again: the artist's image is never touched."""
    tmp = Krita.instance().createDocument(width, height, "sfumato-colour", *src, 72.0)
    try:
        tmp.setBatchmode(True)
        layer = tmp.rootNode().childNodes()[0]
        layer.setPixelData(data, 0, 0, width, height)
        if not tmp.setColorSpace(*dst):
            raise PluginError(
                f"Krita could not convert {'/'.join(src)} to {'/'.join(dst)}; convert the "
                "image to 8-bit sRGB (Image ▸ Convert Image Color Space…) and try again"
            )
        tmp.waitForDone()
        return bytes(layer.pixelData(0, 0, width, height))
    finally:
        tmp.close()


def projection(doc: Any, r: Rect) -> bytes:
    """The visible image (all layers merged) in ``r`` as 8-bit sRGB BGRA."""
    return to_wire(doc, bytes(doc.pixelData(r.x, r.y, r.width, r.height)), r.width, r.height)


def selection_rect(doc: Any) -> Rect | None:
    sel = doc.selection()
    if sel is None or sel.width() <= 0 or sel.height() <= 0:
        return None
    return Rect(sel.x(), sel.y(), sel.width(), sel.height())


def read_image(doc: Any, r: Rect) -> Array:
    """The visible image (all layers merged) in ``r`` as RGBA."""
    return Array(DType.UINT8, (r.height, r.width, 4), bgra_to_rgba(projection(doc, r)))


def read_mask(doc: Any, r: Rect) -> Array | None:
    """The selection in ``r`` as a 1-channel mask (soft edges kept); None without one."""
    sel = doc.selection()
    if sel is None:
        return None
    data = bytes(sel.pixelData(r.x, r.y, r.width, r.height))
    return Array(DType.UINT8, (r.height, r.width, 1), data)


def read_layer_rgb(doc: Any, node: Any, r: Rect, background: QColor) -> Array:
    """A layer's pixels in ``r`` as sRGB RGB, composited over ``background`` (a control
    map is white on black; a picture to detect from reads best on white)."""
    raw = bytes(node.projectionPixelData(r.x, r.y, r.width, r.height))
    data = to_wire(doc, raw, r.width, r.height)
    src = QImage(data, r.width, r.height, 4 * r.width, QImage.Format_ARGB32).copy()
    out = QImage(r.width, r.height, QImage.Format_RGB888)
    out.fill(background)
    painter = QPainter(out)
    painter.drawImage(0, 0, src)
    painter.end()
    bits = out.constBits()
    bits.setsize(out.sizeInBytes())
    stride, row = out.bytesPerLine(), 3 * r.width
    raw = bytes(bits)
    rgb = b"".join(raw[y * stride : y * stride + row] for y in range(r.height))
    return Array(DType.UINT8, (r.height, r.width, 3), rgb)


def read_input(doc: Any, settings: Settings) -> CanvasInput:
    """What one job needs from ``doc``, for the current settings."""
    check_document(doc)
    doc.refreshProjection()  # a script's or a stroke's last change may not be merged yet
    width, height = doc.width(), doc.height()
    selected = selection_rect(doc)
    region = region_for(settings.mode, width, height, selected, settings.context)
    image = None if TASKS[settings.mode] is Task.GENERATE else read_image(doc, region)
    covered = settings.mode is Mode.BACKGROUND and is_opaque(doc, region)
    mask = None
    if selected is not None and settings.mode not in (Mode.EXPAND, Mode.UPSCALE):
        mask = read_mask(doc, region)
    controls = []
    for control in settings.controls:
        node = find_node(doc, control.layer_id)
        if node is None:
            raise PluginError("a control layer was deleted; pick another layer or remove it")
        background = QColor(255, 255, 255) if control.preprocess else QColor(0, 0, 0)
        controls.append(
            ControlInput(
                control.kind,
                read_layer_rgb(doc, node, region, background),
                control.strength,
                control.preprocess,
            )
        )
    from . import directioncanvas  # it reads layers through this module: imported late

    references = directioncanvas.read_references(doc, settings.references)
    regions = ()
    if settings.regions and TASKS[settings.mode] in (Task.GENERATE, Task.REFINE, Task.INPAINT):
        regions = directioncanvas.read_regions(doc, region)
    return CanvasInput(width, height, region, image, mask, tuple(controls), covered,
                       references, regions)  # fmt: skip


def is_opaque(doc: Any, r: Rect) -> bool:
    """Whether the visible image is fully opaque in ``r`` (a background would not show)."""
    alpha = projection(doc, r)[3::4]
    return alpha.count(255) == len(alpha)


# --------------------------------------------------------------------------- layers


def walk(node: Any) -> Iterator[Any]:
    for child in node.childNodes():
        yield child
        yield from walk(child)


def node_id(node: Any) -> str:
    return str(node.uniqueId().toString())


def find_node(doc: Any, layer_id: str) -> Any:
    return next((n for n in walk(doc.rootNode()) if node_id(n) == layer_id), None)


def layers(doc: Any) -> list[tuple[str, str]]:
    """(id, name) of every layer a control can read, top of the stack first."""
    out = [(node_id(n), n.name()) for n in walk(doc.rootNode()) if not n.type().endswith("mask")]
    return out[::-1]


def apply(doc: Any, placement: Placement) -> list[str]:
    """Add the result layers to ``doc`` as ``placement`` says; returns their names."""
    if placement.grow is not None:
        doc.resizeImage(*placement.grow)
        doc.waitForDone()
    if placement.scale_to is not None:
        doc.scaleImage(*placement.scale_to, int(doc.xRes()), int(doc.yRes()), "Bicubic")
        doc.waitForDone()
    group = _group(doc, placement.group, placement.at_bottom)
    for plan in reversed(placement.layers):  # each goes on top: the first ends up above
        node = doc.createNode(plan.name, "paintlayer")
        group.addChildNode(node, None)
        h, w, _ = plan.image.shape
        alpha = None if plan.alpha is None else bytes(plan.alpha.data)
        bgra = rgb_to_bgra(bytes(plan.image.data), alpha)
        node.setPixelData(from_wire(doc, bgra, w, h), plan.x, plan.y, w, h)
        node.setVisible(plan.visible)
    doc.refreshProjection()
    return [plan.name for plan in placement.layers]


def _group(doc: Any, name: str, at_bottom: bool) -> Any:
    root = doc.rootNode()
    for node in root.childNodes():
        if node.type() == "grouplayer" and node.name() == name:
            return node
    group = doc.createGroupLayer(name)
    kids = root.childNodes()
    if not at_bottom or not kids:
        root.addChildNode(group, None)
        return group
    # libkis can only insert *above* a node: go above the lowest, then lift that one over us.
    lowest = kids[0]
    root.addChildNode(group, lowest)
    lowest.remove()
    root.addChildNode(lowest, group)
    return group


def read_history(doc: Any) -> list[dict[str, Any]]:
    if HISTORY not in doc.annotationTypes():
        return []
    try:
        entries = json.loads(bytes(doc.annotation(HISTORY)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []  # written by something else: start afresh rather than fail every job
    return entries if isinstance(entries, list) else []


def append_history(doc: Any, entry: dict[str, Any]) -> None:
    entries = [*read_history(doc), entry]
    data = json.dumps(entries, ensure_ascii=False).encode("utf-8")
    doc.setAnnotation(HISTORY, "Sfumato: the jobs behind this image's layers", QByteArray(data))
