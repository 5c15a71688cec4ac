"""Krita Live inside real Krita (``kritarunner -s live_tasks -f live``; tests/krita/test_live.py
judges what it writes): the plugin as the extension runs it — Plugin, its bridge thread and
QTimers, the LiveController — against a real server, on a document edited like a brush would.
"""

from __future__ import annotations

import time
from typing import Any

from krita_tasks import b64, new_doc, pump, select, settings_from, task
from PyQt5.QtWidgets import QApplication
from sfumato_krita import canvas
from sfumato_krita.livecanvas import live_layer
from sfumato_krita.livemodel import LAYER

W = H = 128


def paint(doc: Any, x: int, y: int, w: int, h: int, bgra: bytes) -> None:
    """A "stroke": a filled rect written into the artist's layer."""
    doc.rootNode().childNodes()[0].setPixelData(bgra * (w * h), x, y, w, h)


def layers_named(doc: Any, name: str) -> int:
    return sum(1 for n in canvas.walk(doc.rootNode()) if n.name() == name)


@task
def live(p: dict[str, Any]) -> dict[str, Any]:
    from sfumato_krita.plugin import Plugin

    began = time.monotonic()
    doc = new_doc(W, H, bytes([128, 128, 128, 255]) * (W * H))
    plugin = Plugin()
    plugin.session.settings = settings_from(p)
    plugin.connect_server()
    pump(lambda: plugin.session.link.value == "connected", 30, "connecting")
    live = plugin.live
    ends: list[list[str]] = []  # every live job's end, as the client saw it
    handle = live.state.handle

    def spy(events: list[object], now: float) -> Any:
        for e in events:
            job_id = getattr(e, "id", None)
            if isinstance(job_id, str) and live.state.loop.ours(job_id):
                ends.append([job_id, type(e).__name__, getattr(e, "reason", "")])
        return handle(events, now)

    live.state.handle = spy  # type: ignore[method-assign]
    out: dict[str, Any] = {"capabilities": list(plugin.session.capabilities)}
    # the docker's Live row, as a click drives it (kritarunner has no view: Krita's active
    # document is None there, so the box is told which document is in front)
    from sfumato_krita import livebox

    livebox.active_document = lambda: doc
    pulled: list[int] = []
    box = livebox.LiveBox(live, lambda: pulled.append(1))
    out["box_before"] = [box.toggle.isChecked(), box.apply_button.isEnabled()]
    box.toggle.setChecked(True)
    assert live.on, live.state.status()
    out["box_on"] = [pulled == [1], box.apply_button.isEnabled(), box.status.text()]
    steps = []

    def settle(what: str) -> dict[str, Any]:
        """Wait for the live layer to show the newest change, then say what it shows."""
        last = live.state.shown.job.id if live.state.shown else None
        pump(lambda: live.state.shown is not None and live.state.shown.job.id != last,
             60, what)  # fmt: skip
        pump(lambda: live.state.loop.current is None and not live.state.loop.dirty, 60, what)
        shown = live.state.shown
        assert shown is not None
        layer = live_layer(doc)
        region = shown.input.region
        paint_layer = doc.rootNode().childNodes()[0]
        painted = canvas.bgra_to_rgba(
            bytes(paint_layer.pixelData(region.x, region.y, region.width, region.height))
        )
        return {
            "what": what,
            "job": shown.job.id,
            "live": [shown.job.params.live, shown.job.params.live_key],
            "task": shown.job.task.value,
            "strength": shown.job.params.strength,
            "region": region.to_list(),
            "input_is_the_painting": bytes(shown.input.image.data) == painted,
            "live_layers": layers_named(doc, LAYER),
            "layer_id": canvas.node_id(layer) if layer is not None else None,
            "layer_pixels": b64(layer.pixelData(0, 0, W, H)) if layer is not None else None,
            "top": [n.name() for n in doc.rootNode().childNodes() if "mask" not in n.type()][-1],
            "status": live.state.status(),
        }

    steps.append(settle("the first look"))
    paint(doc, 10, 10, 40, 40, bytes([0, 0, 255, 255]))  # red (BGRA)
    steps.append(settle("edit 1"))
    paint(doc, 60, 60, 50, 30, bytes([255, 0, 0, 255]))
    steps.append(settle("edit 2"))
    select(doc, [[40, 40, 48, 48, 255]])  # edit 3: a selection, and a stroke inside it
    paint(doc, 50, 50, 20, 20, bytes([0, 255, 0, 255]))
    steps.append(settle("edit 3"))
    out["steps"] = steps
    out["looks"], out["reads"] = live.looks, live.reads
    out["sent"] = live.state.loop.sent_count

    # a burst: ten strokes 30 ms apart, then quiet
    sent = live.state.loop.sent_count
    for n in range(10):
        paint(doc, 40 + n, 44, 4, 4, bytes([n * 20, 0, 0, 255]))
        deadline = time.monotonic() + 0.03
        while time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)
    steps.append(settle("a burst"))
    out["burst_jobs"] = live.state.loop.sent_count - sent

    # Apply: a new layer in the Sfumato group with the live result and a history entry
    shown = live.state.shown
    out["box_shown"] = [box.apply_button.isEnabled(), box.status.text()]
    box.apply_button.click()
    name = live.state.message.removeprefix("applied as the layer ").strip("'")
    group = next(n for n in doc.rootNode().childNodes() if n.name() == "Sfumato")
    applied = group.childNodes()[-1]
    r = shown.plan
    h, w, _ = r.image.shape
    live_px = bytes(live_layer(doc).pixelData(r.x, r.y, w, h))
    out["apply"] = {
        "name": name,
        "layer": applied.name(),
        "same_pixels": bytes(applied.pixelData(r.x, r.y, w, h)) == live_px,
        "history": canvas.read_history(doc)[-1],
        "job": shown.job.id,
        "live_layers": layers_named(doc, LAYER),
    }

    # Live off while a long job runs: it is cancelled, the live layer goes, nothing is sent
    plugin.session.settings.steps = 150
    paint(doc, 0, 0, 8, 8, bytes([9, 9, 9, 255]))
    pump(lambda: live.state.loop.current is not None, 30, "a long live job sent")
    running = live.state.loop.current
    pump(lambda: any(e[0] == running and e[1] == "Progress" for e in ends), 60, "it running")
    box.toggle.setChecked(False)
    out["box_off"] = [box.toggle.isChecked(), box.apply_button.isEnabled(), live.on]
    pump(lambda: any(e[0] == running and e[1] != "Progress" and e[1] != "Accepted"
                     for e in ends), 60, "its end")  # fmt: skip
    sent = live.state.loop.sent_count
    paint(doc, 0, 0, 8, 8, bytes([99, 9, 9, 255]))
    for _ in range(30):  # 0.6 s of polls after an edit: nothing goes out while off
        QApplication.processEvents()
        time.sleep(0.02)
    out["off"] = {
        "job": running,
        "end": next(e for e in ends if e[0] == running and e[1] not in ("Progress", "Accepted")),
        "live_layers": layers_named(doc, LAYER),
        "sent_after": live.state.loop.sent_count - sent,
        "in_flight": list(filter(None, [live.state.loop.current, *live.state.loop.older])),
        "status": live.state.status(),
    }
    out["ends"] = ends
    plugin.close()
    out["elapsed_s"] = round(time.monotonic() - began, 1)  # the test's own cost, in Krita
    return out
