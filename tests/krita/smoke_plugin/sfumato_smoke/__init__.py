"""Test helper loaded by the full Krita GUI (tests/krita/test_gui.py), never shipped.

Once the main window is up it opens an image, finds the Sfumato docker made by the plugin's
factory, types a prompt into its widgets and presses Generate, waits for the layer, grabs a
screenshot, writes what it saw to ``$SFUMATO_SMOKE_OUT`` and quits through Krita's own action.
Everything runs from QTimers on the main thread, as a user's clicks would.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any

from krita import Extension, Krita, Selection
from PyQt5.QtCore import Qt, QTimer

OUT = os.environ.get("SFUMATO_SMOKE_OUT", "")
SHOT = os.environ.get("SFUMATO_SMOKE_SHOT", "")
DOCKER_SHOT = os.environ.get("SFUMATO_SMOKE_DOCKER_SHOT", "")
TIMEOUT = 180.0


class Smoke(Extension):
    def setup(self) -> None:
        self.report: dict[str, Any] = {"ok": False, "steps": []}
        self.started = time.monotonic()
        self.doc: Any = None
        self.docker: Any = None
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(1500, self.open)
        )

    def createActions(self, window: Any) -> None:
        pass

    def step(self, name: str) -> None:
        self.report["steps"].append([name, round(time.monotonic() - self.started, 1)])

    def guarded(self, fn: Any) -> None:
        try:
            fn()
        except Exception:  # reported to the test through the file; Krita must still quit
            self.report["error"] = traceback.format_exc()
            self.finish()

    def open(self) -> None:
        self.guarded(self._open)

    def _open(self) -> None:
        app = Krita.instance()
        window = app.activeWindow()
        self.doc = app.createDocument(256, 192, "sfumato-smoke", "RGBA", "U8", "", 72.0)
        window.addView(self.doc)
        docks = [d for d in app.dockers() if d.objectName().startswith("sfumato_docker")]
        self.report["dockers"] = [d.objectName() for d in docks]
        self.report["docker_type"] = type(docks[0]).__name__ if docks else None
        if not docks:
            raise RuntimeError("no Sfumato docker in the window")
        self.docker = docks[0]
        self.docker.setVisible(True)
        self.docker.raise_()
        window.qwindow().resize(1280, 860)
        sel = Selection()
        sel.select(72, 40, 120, 96, 255)
        self.doc.setSelection(sel)
        self.step("opened")
        self.poll(self.connected, self.generate)

    def poll(self, ready: Any, then: Any) -> None:
        def tick() -> None:
            if time.monotonic() - self.started > TIMEOUT:
                self.report["error"] = (
                    f"timed out; session says: {self.docker.session.status} / {self.docker.session.message}"
                )
                self.finish()
            elif ready():
                self.guarded(then)
            else:
                QTimer.singleShot(100, tick)

        QTimer.singleShot(100, tick)

    def connected(self) -> bool:
        return self.docker.session.link.value == "connected"

    def generate(self) -> None:
        self.step("connected")
        d = self.docker
        d.prompt.setPlainText("a lighthouse at dusk, oil painting")
        d.steps.setValue(6)
        d.seed.setValue(7)
        d.variants.setValue(2)
        items = [d.loras.item(i) for i in range(d.loras.count())]
        self.report["loras"] = [
            [item.text(), bool(item.flags() & Qt.ItemIsUserCheckable)] for item in items
        ]
        for item in items[:1]:  # tick the first, so the screenshot shows a checked box
            item.setCheckState(Qt.Checked)
        self.report["loras_used"] = dict(d.session.settings.loras)
        d.generate_button.click()
        self.step("generate clicked")
        self.poll(self.done, self.shoot)

    def done(self) -> bool:
        job = self.docker.session.job()
        return job is not None and job.state.finished

    def shoot(self) -> None:
        job = self.docker.session.job()
        self.report["job"] = {
            "state": job.state.value,
            "message": job.message,
            "layers": job.layers,
        }
        QTimer.singleShot(800, lambda: self.guarded(self._shoot))

    def _shoot(self) -> None:
        window = Krita.instance().activeWindow().qwindow()
        if SHOT:
            self.report["screenshot"] = window.grab().save(SHOT)
            self.report["docker_shot"] = self.docker.grab().save(
                SHOT.replace(".png", "-docker.png")
            )
        root = self.doc.rootNode()
        self.report["tree"] = [
            [n.name(), n.type(), [c.name() for c in n.childNodes()]] for n in root.childNodes()
        ]
        self.report["progress"] = self.docker.progress.value()
        self.report["has_preview"] = (
            self.docker.preview.pixmap() is not None and not self.docker.preview.pixmap().isNull()
        )
        self.report["ok"] = True
        self.step("shot")
        self.finish()

    def finish(self) -> None:
        if OUT:
            with open(OUT, "w", encoding="utf-8") as f:
                json.dump(self.report, f)
        if self.doc is not None:
            self.doc.setModified(False)
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(Smoke(Krita.instance()))
