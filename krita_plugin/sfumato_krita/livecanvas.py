"""Krita Live's canvas side (issue 12, item 3): the cheap look a poll takes, the one live
preview layer (made once, then written in place) and reading the region without it.

A poll never reads the canvas: it takes each of the artist's layers' 32×32 thumbnail (Krita
keeps a thumbnail cache per paint device, so an unchanged layer costs next to nothing) and
their visibility, opacity and blending. Only when a change has been quiet long enough does
``read`` take the region's pixels, through ``canvas.read_input`` like every job, with the
live layer hidden for that moment so the next job refines the painting, not the last result.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import canvas
from .jobs import CanvasInput, LayerPlan, Mode, Rect
from .livemodel import LAYER, Look, NodeLook
from .model import Settings

THUMB = 32  # thumbnail side of a poll's look


def live_layer(doc: Any) -> Any:
    """The live preview layer (a top-level paint layer named LAYER), or None."""
    for node in doc.rootNode().childNodes():
        if node.type() == "paintlayer" and node.name() == LAYER:
            return node
    return None


def look(doc: Any, settings_key: object) -> Look:
    """What a live job depends on, without reading the canvas."""
    skip = live_layer(doc)
    skip_id = canvas.node_id(skip) if skip is not None else ""
    nodes = []
    for node in canvas.walk(doc.rootNode()):
        node_id = canvas.node_id(node)
        if node_id == skip_id:
            continue
        thumb = b""
        if node.type() != "grouplayer":  # a group's look is its children's
            image = node.thumbnail(THUMB, THUMB)
            thumb = image.constBits().asstring(image.sizeInBytes()) if not image.isNull() else b""
        nodes.append(NodeLook(node_id, node.visible(), node.opacity(), node.blendingMode(), thumb))
    sel = canvas.selection_rect(doc)
    return Look(
        (doc.width(), doc.height()),
        None if sel is None else (sel.x, sel.y, sel.width, sel.height),
        tuple(nodes),
        settings_key,
    )


def read(doc: Any, settings: Settings) -> CanvasInput:
    """The region's input for a live refine, with the live layer out of the picture."""
    refine = replace(settings, mode=Mode.REFINE)
    layer = live_layer(doc)
    if layer is None or not layer.visible():
        return canvas.read_input(doc, refine)
    layer.setVisible(False)
    try:
        return canvas.read_input(doc, refine)  # refreshes the projection without it
    finally:
        layer.setVisible(True)


def show(doc: Any, plan: LayerPlan, last: Rect | None) -> Rect:
    """Write ``plan`` into the live layer (made on first use, on top of the document),
    clearing what the last result covered outside it; returns the rect written. The layer's
    visibility and opacity stay as the artist set them."""
    layer = live_layer(doc)
    if layer is None:
        layer = doc.createNode(LAYER, "paintlayer")
        doc.rootNode().addChildNode(layer, None)
    h, w, _ = plan.image.shape
    rect = Rect(plan.x, plan.y, w, h)
    if last is not None and last != rect:
        layer.setPixelData(bytes(4 * last.width * last.height), last.x, last.y, last.width,
                           last.height)  # fmt: skip
    alpha = None if plan.alpha is None else bytes(plan.alpha.data)
    bgra = canvas.rgb_to_bgra(bytes(plan.image.data), alpha)
    layer.setPixelData(canvas.from_wire(doc, bgra, w, h), plan.x, plan.y, w, h)
    doc.refreshProjection()
    return rect


def remove(doc: Any) -> bool:
    """Take the live layer out of the document; whether there was one."""
    layer = live_layer(doc)
    if layer is None:
        return False
    layer.remove()
    doc.refreshProjection()
    return True
