"""Test helper loaded by the full Krita GUI (tests/krita/test_gui.py), never shipped.

Once the main window is up it opens an image, finds the Sfumato docker made by the plugin's
factory and, in one Krita session (a Krita start is slow):
1. measures the docker in a 1600×1000 window (it must fit or scroll; Generate visible);
2. types seeds at both ends of the protocol's range into the Seed box;
3. types a prompt and presses Generate, waits for the layers, grabs screenshots;
4. fires *Sfumato: Generate* through Krita's action system with seed 2**32 − 1, saves the
   image as .kra and opens it again to read the history back;
5. starts a long job with the action, tries to start a second, and stops it with
   *Sfumato: Cancel*;
6. opens a second window, then points the docker at a port nothing listens on and measures
   the no-server status.
Screenshots (``$SFUMATO_SMOKE_SHOT`` and names derived from it, see ``shot``) are taken on the
way: docs/krita.md shows them.
It writes what it saw to ``$SFUMATO_SMOKE_OUT`` (with every exception that reached Krita's
excepthook) and quits through Krita's own action. Everything runs from QTimers on the main
thread, as a user's clicks would.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from typing import Any

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QRect, Qt, QTimer
from PyQt5.QtWidgets import QApplication

OUT = os.environ.get("SFUMATO_SMOKE_OUT", "")
SHOT = os.environ.get("SFUMATO_SMOKE_SHOT", "")
DOCKER_SHOT = os.environ.get("SFUMATO_SMOKE_DOCKER_SHOT", "")
KRA = os.environ.get("SFUMATO_SMOKE_KRA", "")
TIMEOUT = 240.0
WINDOW = (1600, 1000)
SEED_MAX = 2**32 - 1


class Smoke(Extension):
    def setup(self) -> None:
        self.report: dict[str, Any] = {"ok": False, "steps": [], "exceptions": []}
        self._hook = sys.excepthook
        sys.excepthook = self.excepthook
        self.started = time.monotonic()
        self.doc: Any = None
        self.docker: Any = None
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(1500, self.open)
        )

    def createActions(self, window: Any) -> None:
        pass

    def shot(self, suffix: str, widget: Any) -> bool:
        """Grab ``widget`` into ``$SFUMATO_SMOKE_SHOT`` with ``suffix`` before ``.png``."""
        return bool(SHOT) and widget.grab().save(SHOT.replace(".png", f"{suffix}.png"))

    def excepthook(self, kind: Any, value: Any, tb: Any) -> None:
        """Exceptions raised in slots (an action's handler) land here, not in our code."""
        self.report["exceptions"].append("".join(traceback.format_exception(kind, value, tb)))
        self._hook(kind, value, tb)

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
        window.qwindow().resize(*WINDOW)
        sel = Selection()
        sel.select(72, 40, 120, 96, 255)
        self.doc.setSelection(sel)
        self.step("opened")
        self.poll(self.connected, lambda: QTimer.singleShot(500, self.guarded_layout))

    def guarded_layout(self) -> None:
        self.guarded(self.layout)

    def layout(self) -> None:
        """Issue 9 item 18 / issue 18 item 3: in a 1600×1000 window with the default
        dockers the docker fits or scrolls, and its footer is on screen."""
        self.step("connected")
        d, qwindow = self.docker, Krita.instance().activeWindow().qwindow()
        qwindow.resize(*WINDOW)
        QApplication.processEvents()
        window_rect = QRect(0, 0, qwindow.width(), qwindow.height())

        def on_screen(widget: Any) -> bool:
            top_left = widget.mapTo(qwindow, widget.rect().topLeft())
            inside = window_rect.contains(QRect(top_left, widget.size()))
            return widget.isVisible() and not widget.visibleRegion().isEmpty() and inside

        self.report["layout"] = {
            "window": [qwindow.width(), qwindow.height()],
            "minimum": [qwindow.minimumSizeHint().width(), qwindow.minimumSizeHint().height()],
            "docker": [d.width(), d.height()],
            "docker_minimum": d.minimumSizeHint().height(),
            "on_screen": {
                name: on_screen(getattr(d, name))
                for name in ("generate_button", "cancel_button", "progress", "status", "scroll")
            },
            "advanced_folded": not d.advanced.isVisible(),
            "other_dockers": sorted(
                w.objectName() for w in Krita.instance().dockers() if w.isVisible()
            ),
        }
        # issue 18 item 4: a long error neither squeezes the form nor grows the docker
        prompt_before, minimum_before = d.prompt.height(), qwindow.minimumSizeHint().height()
        d.session.fail("model_unavailable: " + "the weights are not on this disk; " * 18)
        QApplication.processEvents()
        self.report["long_message"] = {
            "prompt": [prompt_before, d.prompt.height()],
            "minimum": [minimum_before, qwindow.minimumSizeHint().height()],
            "shown": len(d.message.text()),
            "details": d.details.isVisible(),
            "full_in_tooltip": d.message.toolTip() == d.session.message,
            "label": self.label_fit(d.message),
            "status": self.label_fit(d.status),
        }
        self.report["long_message_shot"] = self.shot("-long-error", d)
        d.session.fail("")
        self.report["strength_shown"] = self.strength_shown()
        self.report["models"] = [
            [d.model.itemText(i), d.model.itemData(i), d.model.model().item(i).isEnabled()]
            for i in range(d.model.count())
        ]
        self.report["limits"] = {"steps": d.steps.maximum(), "variants": d.variants.maximum()}
        self.seeds()
        self.generate()

    def label_fit(self, label: Any) -> dict[str, Any]:
        """Whether a wrapped label has the room its text needs, all of it in view."""
        visible = label.visibleRegion().boundingRect()
        needs = label.heightForWidth(label.width())
        return {
            "size": [label.width(), label.height()],
            "needs": needs,
            "visible": [visible.width(), visible.height()],
            "lines": needs // label.fontMetrics().lineSpacing(),
        }

    def strength_shown(self) -> dict[str, bool]:
        """Issue 18 item 6: Strength is shown only in the modes it steers."""
        d, shown = self.docker, {}
        before = d.mode.currentIndex()
        for index in range(d.mode.count()):
            d.mode.setCurrentIndex(index)
            QApplication.processEvents()
            shown[d.mode.itemData(index)] = d.strength.isVisible() and d.strength_label.isVisible()
        d.mode.setCurrentIndex(before)
        return shown

    def seeds(self) -> None:
        """Issue 9 item 2: every seed the protocol allows goes through the Seed box."""
        d, seen = self.docker, {}
        for text in ("4294967295", "2147483648", "0", "4294967296"):
            d.seed.lineEdit().selectAll()
            d.seed.lineEdit().setText(text)
            d.seed.interpretText()
            d._store()
            seen[text] = d.session.settings.seed
        d.seed.set_seed(None)
        d._store()
        seen["random"] = d.session.settings.seed
        self.report["seeds"] = seen

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
        d = self.docker
        d.advanced_toggle.setChecked(True)  # unfolded: the screenshot shows the LoRAs
        d.prompt.setPlainText("a lighthouse at dusk, oil painting")
        d.steps.setValue(6)
        d.seed.set_seed(7)
        d.variants.setValue(2)
        items = [d.loras.item(i) for i in range(d.loras.count())]
        self.report["loras"] = [
            [item.text(), bool(item.flags() & Qt.ItemIsUserCheckable)] for item in items
        ]
        for item in items:  # tick the style LoRA, so the screenshot shows a checked box
            if item.text() == "tiny-sd-style":
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
            "layers": job.purpose.layers,
        }
        QTimer.singleShot(800, lambda: self.guarded(self._shoot))

    def _shoot(self) -> None:
        window = Krita.instance().activeWindow().qwindow()
        if SHOT:
            self.report["screenshot"] = window.grab().save(SHOT)
            # the whole settings page as it scrolls, Advanced unfolded (LoRAs, seed, steps)
            self.report["docker_shot"] = self.shot("-settings", self.docker.scroll.widget())
        root = self.doc.rootNode()
        self.report["tree"] = [
            [n.name(), n.type(), [c.name() for c in n.childNodes()]] for n in root.childNodes()
        ]
        self.report["progress"] = self.docker.progress.value()
        self.report["has_preview"] = (
            self.docker.preview.pixmap() is not None and not self.docker.preview.pixmap().isNull()
        )
        self.step("shot")
        self.action_generate()

    def action(self, name: str) -> None:
        action = Krita.instance().action(name)
        if action is None:
            raise RuntimeError(f"Krita has no action {name}")
        self.report.setdefault("actions", []).append([name, action.isEnabled()])
        if sys.excepthook is not self.excepthook:  # Krita installs its own after setup()
            self._hook, sys.excepthook = sys.excepthook, self.excepthook
        action.trigger()

    def action_generate(self) -> None:
        """Issue 18 item 1: the menu action, fired after its window wrapper is gone."""
        d = self.docker
        d.seed.set_seed(SEED_MAX)
        d.variants.setValue(2)
        d.steps.setValue(2)
        self.jobs_before = d.session.started
        self.action("sfumato_generate")
        self.started_by_action()
        # issue 18 item 5: the first job's preview and "done" are gone as the next one starts
        self.report["next_job_start"] = {
            "preview_shown": d.preview.isVisible(),
            "progress": [d.progress.value(), d.progress.text()],
        }
        self.step("action generate")
        self.poll(self.landed, self.saved)

    def landed(self) -> bool:
        """The second job is in the document: its history entry is written last (Krita
        runs events while layers are added, so "done" alone can be seen mid-way)."""
        from sfumato_krita import canvas

        return self.done() and len(canvas.read_history(self.doc)) == 2

    def saved(self) -> None:
        job = self.docker.session.job()
        from sfumato_krita import canvas

        self.report["action_job"] = {
            "state": job.state.value, "message": job.message, "layers": job.purpose.layers,
            "history_seeds": canvas.read_history(self.doc)[-1]["seeds"],
        }  # fmt: skip
        if KRA:
            self.doc.setBatchmode(True)
            self.report["kra_saved"] = self.doc.saveAs(KRA)
            again = Krita.instance().openDocument(KRA)
            self.report["kra_history_seeds"] = [e["seeds"] for e in canvas.read_history(again)]
            self.report["kra_layers"] = [
                c.name() for n in again.rootNode().childNodes() for c in n.childNodes()
            ]
            again.close()
        self.step("kra")
        self.refused()
        self.action_cancel()

    def refused(self) -> None:
        """Issue 18 item 5: a refusal after a finished job shows no old "done" or preview."""
        d = self.docker
        before = [d.progress.text(), d.preview.isVisible()]
        d.controller.generate(None)  # no image: refused before anything is sent
        QApplication.processEvents()
        self.report["refusal"] = {
            "before": before,
            "after": [d.progress.value(), d.progress.text(), d.preview.isVisible()],
            "message": d.message.text(),
            "generate_enabled": d.generate_button.isEnabled(),
        }
        # issue 18 item 6: a model whose weights the server lacks is refused before sending
        started = d.session.started
        d.session.choose_model("studio-sd15")
        d.controller.generate(self.doc)
        self.report["missing_weights"] = {
            "message": d.message.text(),
            "started": d.session.started - started,
        }
        d.session.choose_model(d.model.currentData() or None)

    def action_cancel(self) -> None:
        d = self.docker
        d.steps.setValue(150)
        d.seed.set_seed(3)
        d.variants.setValue(1)
        self.jobs_before = d.session.started
        self.action("sfumato_generate")
        self.started_by_action()
        self.poll(lambda: d.session.job().state.value == "running", self.cancel_running)

    def started_by_action(self) -> None:
        from sfumato_krita.extension import find_docker

        if self.docker.session.started == self.jobs_before:
            raise RuntimeError(
                f"the action started no job: {self.docker.session.message!r}; "
                f"exceptions: {self.report['exceptions']}; actions: {self.report['actions']};"
                f"its docker: {find_docker(Krita.instance().action('sfumato_generate'))} "
                f"(ours: {self.docker})"
            )

    def cancel_running(self) -> None:
        d = self.docker
        self.report["while_running"] = {"generate_enabled": d.generate_button.isEnabled()}
        self.action("sfumato_generate")  # a second start while one runs is refused
        self.report["while_running"]["jobs_started"] = d.session.started - self.jobs_before
        self.report["while_running"]["message"] = d.session.message
        self.action("sfumato_cancel")
        self.step("action cancel")
        self.poll(self.done, self.cancelled)

    def cancelled(self) -> None:
        job = self.docker.session.job()
        self.report["cancel_job"] = {"state": job.state.value, "layers": job.purpose.layers}
        self.report["generate_enabled_after"] = self.docker.generate_button.isEnabled()
        self.close_mid_run()

    def close_mid_run(self) -> None:
        """Issue 18 item 5: a job whose image is closed before its result arrives."""
        d, app = self.docker, Krita.instance()
        other = app.createDocument(128, 96, "sfumato-closed", "RGBA", "U8", "", 72.0)
        app.activeWindow().addView(other)
        d.steps.setValue(2)
        d._store()
        self.closed_id = d.controller.generate(other)
        other.setModified(False)
        other.close()
        self.poll(self.done, self.after_close)

    def after_close(self) -> None:
        d = self.docker
        job = d.session.job()
        self.report["closed"] = {
            "same_job": job.id == self.closed_id,
            "state": job.state.value,
            "layers": job.purpose.layers,
            "message": d.message.text() + d.message.toolTip(),
            "progress": d.progress.text(),
            "documents": len(Krita.instance().documents()),
        }
        self.rival()
        Krita.instance().openWindow().qwindow().show()  # issue 10 item 2: a second docker
        QTimer.singleShot(1500, lambda: self.guarded(self.windows))

    def rival(self) -> None:
        """The rival plugin (tests/krita/rival_plugin) vendors fake websockets/msgpack."""
        rival = sys.modules.get("rival")
        client = sys.modules["sfumato_krita._vendor.sfumato.client"]
        self.report["rival"] = {
            "loaded": getattr(rival, "LOADED", None),
            "public": [
                getattr(sys.modules.get(n), "MARKER", None) for n in ("msgpack", "websockets")
            ],
            "ours": client.connect.__module__,
        }

    def windows(self) -> None:
        from sfumato_krita.docker import SfumatoDocker

        wins = Krita.instance().windows()
        dockers = [d for w in wins for d in w.qwindow().findChildren(SfumatoDocker)]
        first = self.docker
        self.report["windows"] = {
            "count": len(wins),
            "dockers": len(dockers),
            "same_plugin": all(d.plugin is first.plugin for d in dockers),
            "same_session": all(d.session is first.session for d in dockers),
            "connects": first.plugin.bridge.connects,
            "second_status": dockers[-1].status.text() if dockers else "",
            "second_machine": dockers[-1].machine.text() if dockers else "",
        }
        self.no_server()

    def no_server(self) -> None:
        """Issue 18 item 4: the status for a URL nothing answers at is shown whole."""
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # a port that was free a moment ago: nothing listens there
        d = self.docker
        d.url.setText(f"ws://127.0.0.1:{port}")
        d.connect_server()
        self.poll(lambda: d.session.status.startswith("disconnected"), self.measure_status)

    def measure_status(self) -> None:
        d = self.docker
        qwindow = d.window()
        qwindow.activateWindow()
        QApplication.processEvents()
        self.report["no_server"] = {
            "session": d.session.status,
            "shown": d.status.text(),
            **self.label_fit(d.status),
            "minimum": qwindow.minimumSizeHint().height(),
            "window": [qwindow.width(), qwindow.height()],
            "shot": self.shot("-no-server", d),
        }
        self.report["ok"] = True
        self.finish()

    def finish(self) -> None:
        if OUT:
            with open(OUT, "w", encoding="utf-8") as f:
                json.dump(self.report, f)
        if self.doc is not None:
            self.doc.setModified(False)
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(Smoke(Krita.instance()))
