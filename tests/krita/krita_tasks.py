"""Runs INSIDE Krita (``kritarunner -s krita_tasks -f <task>``), against the real Krita API and
the plugin installed from the built zip. Each task reads its arguments from the JSON file named
by ``$SFUMATO_KRITA_IN`` and writes what it saw to ``payload["out"]``; the pytest side
(test_*.py) judges that file, never Krita's exit code (rare teardown segfaults).

Pixels travel back as base64 so the tests compare them exactly, with numpy, outside Krita.
"""

from __future__ import annotations

import base64
import json
import os
import time
import traceback
from typing import Any

from krita import Krita, Selection
from PyQt5.QtWidgets import QApplication
from sfumato_krita import canvas
from sfumato_krita._vendor.sfumato.client import Client  # the plugin's private copy
from sfumato_krita._vendor.sfumato.protocol import ControlKind
from sfumato_krita.controller import Controller
from sfumato_krita.jobs import Mode, Rect
from sfumato_krita.model import ControlLayer, JobState, Session, Settings


def b64(data: Any) -> str:
    return base64.b64encode(bytes(data)).decode()


def task(fn: Any) -> Any:
    """Read the payload, run ``fn``, write its answer (or the traceback) to payload["out"]."""

    def run(*_args: Any) -> None:
        with open(os.environ["SFUMATO_KRITA_IN"], encoding="utf-8") as f:
            payload = json.load(f)
        try:
            out = {"ok": True, **fn(payload)}
        except Exception:  # reported to pytest, which shows it; Krita must still quit
            out = {"ok": False, "error": traceback.format_exc()}
        with open(payload["out"], "w", encoding="utf-8") as f:
            json.dump(out, f)

    run.__name__ = fn.__name__
    return run


def new_doc(width: int, height: int, bgra: bytes | None = None, profile: str = "") -> Any:
    app = Krita.instance()
    doc = app.createDocument(width, height, "sfumato-test", "RGBA", "U8", profile, 72.0)
    doc.setBatchmode(True)
    if bgra is not None:
        doc.rootNode().childNodes()[0].setPixelData(bgra, 0, 0, width, height)
    doc.refreshProjection()
    return doc


def select(doc: Any, rects: list[list[int]]) -> None:
    """Rects [x, y, w, h, value]: later ones are added on top (value = selection strength)."""
    sel = Selection()
    for x, y, w, h, value in rects:
        part = Selection()
        part.select(x, y, w, h, value)
        sel.add(part)
    doc.setSelection(sel)


def settings_from(payload: dict[str, Any]) -> Settings:
    s = Settings(url=payload["url"], mode=Mode(payload.get("mode", "generate")))
    s.prompt = payload.get("prompt", "a test")
    s.seed, s.steps = payload.get("seed", 5), payload.get("steps", 2)
    s.variants, s.strength = payload.get("variants", 1), payload.get("strength", 0.75)
    s.context, s.expand = payload.get("context", 32), payload.get("expand", 64)
    s.loras = dict(payload.get("loras", {}))
    return s


def run_job(controller: Controller, client: Client, doc: Any, timeout: float = 240) -> Any:
    """Start a job and pump client events on this (Krita's main) thread until it ends."""
    job_id = controller.generate(doc)
    if job_id is None:
        raise AssertionError(f"refused: {controller.session.message}")
    deadline = time.monotonic() + timeout
    record = controller.session.jobs[job_id]
    while not record.state.finished:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {record.state} after {timeout} s")
        controller.handle(client.events())
        QApplication.processEvents()
        time.sleep(0.02)
    return record


def connect(payload: dict[str, Any]) -> tuple[Session, Client, Controller]:
    session = Session(settings_from(payload))
    client = Client(payload["url"], name="krita-test")
    controller = Controller(session, client)
    client.connect()
    controller.handle(client.events())  # the Connected event: capabilities, models
    return session, client, controller


def describe(doc: Any) -> dict[str, Any]:
    """The layer tree (bottom first, as Krita lists it), and every paint layer's pixels."""

    def node(n: Any) -> dict[str, Any]:
        out = {"name": n.name(), "type": n.type(), "visible": n.visible()}
        if n.type() == "paintlayer":
            out["pixels"] = b64(n.pixelData(0, 0, doc.width(), doc.height()))
        if n.type() == "grouplayer":
            out["children"] = [node(c) for c in n.childNodes()]
        return out

    doc.refreshProjection()
    return {
        "width": doc.width(),
        "height": doc.height(),
        "tree": [node(n) for n in doc.rootNode().childNodes()],
        "projection": b64(doc.pixelData(0, 0, doc.width(), doc.height())),
        "history": canvas.read_history(doc),
    }


def record_info(record: Any) -> dict[str, Any]:
    return {
        "state": record.state.value,
        "message": record.message,
        "layers": record.purpose.layers,
        "region": record.purpose.input.region.to_list(),
        "preview": None if record.preview is None else list(record.preview.shape),
    }


# --------------------------------------------------------------------------- tasks


@task
def canvas_io(p: dict[str, Any]) -> dict[str, Any]:
    """Canvas and selection ↔ arrays, through the plugin's canvas module."""
    w, h = p["width"], p["height"]
    doc = new_doc(w, h, base64.b64decode(p["bgra"]))
    r = Rect(*p["region"])
    image = canvas.read_image(doc, r)
    no_mask = canvas.read_mask(doc, r)
    select(doc, p["selection"])
    mask = canvas.read_mask(doc, r)
    sel_rect = canvas.selection_rect(doc)
    layer = doc.createNode("control", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    layer.setPixelData(base64.b64decode(p["layer_bgra"]), 0, 0, w, h)
    from PyQt5.QtGui import QColor

    over_black = canvas.read_layer_rgb(doc, layer, r, QColor(0, 0, 0))
    over_white = canvas.read_layer_rgb(doc, layer, r, QColor(255, 255, 255))
    placed = doc.createNode("placed", "paintlayer")
    doc.rootNode().addChildNode(placed, None)
    rgb = base64.b64decode(p["rgb"])
    alpha = base64.b64decode(p["alpha"])
    pw, ph = p["placed_size"]
    px, py = p["placed_at"]
    placed.setPixelData(canvas.rgb_to_bgra(rgb, alpha), px, py, pw, ph)
    return {
        "image": b64(image.data),
        "image_shape": list(image.shape),
        "no_mask": no_mask is None,
        "mask": b64(mask.data) if mask is not None else None,
        "selection_rect": sel_rect.to_list() if sel_rect else None,
        "over_black": b64(over_black.data),
        "over_white": b64(over_white.data),
        "placed": b64(placed.pixelData(0, 0, w, h)),
        "layers": canvas.layers(doc),
    }


@task
def job(p: dict[str, Any]) -> dict[str, Any]:
    """One job end to end: document → plugin → server → layers."""
    w, h = p["width"], p["height"]
    doc = new_doc(
        w, h, base64.b64decode(p["bgra"]) if p.get("bgra") else None, p.get("profile", "")
    )
    for extra in p.get("extra_layers", []):
        layer = doc.createNode(extra["name"], "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        layer.setPixelData(base64.b64decode(extra["bgra"]), 0, 0, w, h)
    if p.get("selection"):
        select(doc, p["selection"])
    before = describe(doc)
    session, client, controller = connect(p)
    for c in p.get("controls", []):
        node = next(n for n in doc.rootNode().childNodes() if n.name() == c["layer"])
        control = ControlLayer(canvas.node_id(node), ControlKind(c["kind"]), c["strength"])
        control.preprocess = c["preprocess"]
        session.settings.controls.append(control)
    if p.get("cancel"):
        record = cancel_job(controller, client, doc)
    else:
        record = run_job(controller, client, doc)
    client.close()
    return {
        "capabilities": list(session.capabilities),
        "record": record_info(record),
        "notice": session.message,
        "before": before,
        "after": describe(doc),
    }


def cancel_job(controller: Controller, client: Client, doc: Any) -> Any:
    job_id = controller.generate(doc)
    assert job_id is not None, controller.session.message
    record = controller.session.jobs[job_id]
    deadline = time.monotonic() + 120
    while record.state is JobState.SENT:
        controller.handle(client.events())
        time.sleep(0.01)
    controller.cancel()
    while not record.state.finished and time.monotonic() < deadline:
        controller.handle(client.events())
        time.sleep(0.02)
    return record


def pump(ready: Any, timeout: float, what: str) -> None:
    """Run Krita's event loop (the plugin's QTimers, its bridge) until ``ready()``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        QApplication.processEvents()
        time.sleep(0.02)


@task
def reconnect(p: dict[str, Any]) -> dict[str, Any]:
    """The plugin as the extension runs it (Plugin: bridge thread, QTimers, retry) through a
    connection that breaks while a job runs; the peer decides what the refetch gets."""
    from sfumato_krita.plugin import Plugin

    doc = new_doc(p["width"], p["height"])
    plugin = Plugin()
    plugin.session.settings = settings_from(p)
    seen: list[list[str]] = []

    def note(session: Any) -> None:
        line = [session.link.value, session.status, session.message]
        if not seen or seen[-1] != line:
            seen.append(line)

    plugin.session.subscribe(note)
    plugin.connect_server()
    pump(lambda: plugin.session.link.value == "connected", 30, "connecting")
    job_id = plugin.controller.generate(doc)
    assert job_id is not None, plugin.session.message
    record = plugin.session.jobs[job_id]
    pump(lambda: record.state.finished, 60, f"the end of job {job_id}")
    plugin.close()
    return {
        "job_id": job_id,
        "record": record_info(record),
        "seen": seen,
        "connects": plugin.bridge.connects,
        "after": describe(doc),
    }


@task
def profiles(p: dict[str, Any]) -> dict[str, Any]:
    """Issue 18 item 2: documents in other profiles and depths, read and written through the
    plugin's canvas module; what the artist sees is judged by converting a clone of the
    document to sRGB with Krita itself (not by the plugin's code)."""
    from sfumato_krita._vendor.sfumato.protocol import Array, DType
    from sfumato_krita.jobs import LayerPlan, Placement, PluginError

    out = []
    for case in p["cases"]:
        w, h = case["width"], case["height"]
        app = Krita.instance()
        doc = app.createDocument(w, h, "profile", "RGBA", case["depth"], case["profile"], 72.0)
        doc.setBatchmode(True)
        doc.rootNode().childNodes()[0].setPixelData(base64.b64decode(case["raw"]), 0, 0, w, h)
        doc.refreshProjection()
        seen: dict[str, Any] = {"profile": doc.colorProfile(), "depth": doc.colorDepth()}
        seen["sent"] = b64(canvas.read_image(doc, Rect(0, 0, w, h)).data)
        rgb = base64.b64decode(case["result_rgb"])
        image = Array(DType.UINT8, (h, w, 3), rgb)
        plan = LayerPlan("result", 0, 0, image, None, True)
        canvas.apply(doc, Placement("Sfumato", False, (plan,)))
        group = next(n for n in doc.rootNode().childNodes() if n.name() == "Sfumato")
        layer = group.childNodes()[0]
        seen["layer_raw"] = b64(layer.pixelData(0, 0, w, h))
        seen["read_back"] = b64(canvas.read_image(doc, Rect(0, 0, w, h)).data)
        clone = doc.clone()
        clone.setBatchmode(True)
        clone.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
        clone.waitForDone()
        clone.refreshProjection()
        seen["artist_sees"] = b64(clone.pixelData(0, 0, w, h))
        seen["documents_open"] = len(app.documents())
        clone.close()
        doc.close()
        out.append(seen)
    cmyk = Krita.instance().createDocument(8, 8, "cmyk", "CMYKA", "U8", "", 72.0)
    try:
        canvas.check_document(cmyk)
        refusal = ""
    except PluginError as exc:
        refusal = str(exc)
    cmyk.close()
    return {"cases": out, "cmyk": refusal}
