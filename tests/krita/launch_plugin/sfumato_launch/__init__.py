"""Test helper loaded by the full Krita GUI (tests/krita/test_localserver.py), never shipped.

Through the Sfumato docker's "Local server" box, as a user's clicks would (QTimers on the
main thread): a wrong environment path → its message; this checkout's server environment
(``$SFUMATO_SERVER_ENV``) → Start, wait until the docker is connected, Generate one tiny
image, Stop and check the process is gone; Start again and quit Krita at once — the test
then checks that server went with Krita. Writes what it saw to ``$SFUMATO_LAUNCH_OUT``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from krita import Extension, Krita
from PyQt5.QtCore import QTimer

OUT = os.environ.get("SFUMATO_LAUNCH_OUT", "")
TIMEOUT = 240.0


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class Launch(Extension):
    def setup(self) -> None:
        self.report: dict[str, Any] = {"ok": False, "exceptions": [], "seen": []}
        self._hook = sys.excepthook
        sys.excepthook = self.excepthook
        self.started = time.monotonic()
        self.run = 1  # which start of the server "seen" is watching: the first, then "again"
        self.doc: Any = None
        self.docker: Any = None
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(1000, lambda: self.guarded(self.open))
        )

    def createActions(self, window: Any) -> None:
        pass

    def excepthook(self, kind: Any, value: Any, tb: Any) -> None:
        self.report["exceptions"].append("".join(traceback.format_exception(kind, value, tb)))
        self._hook(kind, value, tb)

    def guarded(self, fn: Any) -> None:
        try:
            fn()
        except Exception:  # reported to the test through the file; Krita must still quit
            self.report["error"] = traceback.format_exc()
            self.finish()

    def at(self, stage: str) -> None:
        self.report.setdefault("at", {})[stage] = round(time.monotonic() - self.started, 1)

    def poll(self, ready: Any, then: Any) -> None:
        def tick() -> None:
            box = self.docker.server_box
            seen = [box.toggle.text(), box.progress.value(), box.progress.isVisible(), self.run]
            if not self.report["seen"] or self.report["seen"][-1] != seen:
                self.report["seen"].append(seen)
            if time.monotonic() - self.started > TIMEOUT:
                status = box.runner.status
                self.report["error"] = f"timed out: {status.state} {status.message} {status.lines}"
                self.finish()
            elif ready():
                self.guarded(then)
            else:
                QTimer.singleShot(100, tick)

        QTimer.singleShot(100, tick)

    def open(self) -> None:
        app = Krita.instance()
        self.doc = app.createDocument(64, 64, "sfumato-launch", "RGBA", "U8", "", 72.0)
        app.activeWindow().addView(self.doc)
        docks = [d for d in app.dockers() if d.objectName().startswith("sfumato_docker")]
        if not docks:
            raise RuntimeError("no Sfumato docker in the window")
        self.docker = d = docks[0]
        self.at("open")
        d.setVisible(True)
        box = d.server_box
        self.report["folded"] = not box.body.isVisible()
        box.environment.setText(os.path.join(os.environ["SFUMATO_LAUNCH_TMP"], "no-such-env"))
        box.start_button.click()
        self.report["wrong"] = {
            "text": box.state.text(),
            "state": box.runner.status.state.value,
            "unfolded": box.body.isVisible(),
        }
        box.environment.setText(os.environ["SFUMATO_SERVER_ENV"])
        box.arguments.setText(os.environ["SFUMATO_LAUNCH_ARGS"])
        box.start_button.click()
        self.report["url"] = d.session.settings.url
        self.poll(lambda: d.session.link.value == "connected", lambda: self.guarded(self.generate))

    def generate(self) -> None:
        d, status = self.docker, self.docker.server_box.runner.status
        self.at("connected")
        self.report["ready"] = {
            "state": status.state.value, "pid": status.pid, "owned": status.owned,
            "lines": list(status.lines), "log": d.server_box.log.toPlainText(),
            "stop_enabled": d.server_box.stop_button.isEnabled(),
            "start_enabled": d.server_box.start_button.isEnabled(),
        }  # fmt: skip
        d.prompt.setPlainText("a quiet harbour")
        d.steps.setValue(1)
        d.variants.setValue(1)
        d.generate_button.click()
        self.poll(self.done, lambda: self.guarded(self.stop))

    def done(self) -> bool:
        job = self.docker.session.job()
        return job is not None and job.state.finished

    def stop(self) -> None:
        d = self.docker
        job = d.session.job()
        self.at("generated")
        self.report["job"] = {"state": job.state.value, "layers": job.purpose.layers}
        d.server_box.stop_button.click()
        box = d.server_box
        self.poll(lambda: not box.runner.status.state.alive, lambda: self.guarded(self.stopped))

    def stopped(self) -> None:
        box = self.docker.server_box
        status = box.runner.status
        pid = self.report["ready"]["pid"]
        self.at("stopped")
        self.report["stopped"] = {
            "state": status.state.value, "gone": gone(pid), "title": box.toggle.text(),
            "session": self.docker.session.status, "retry": self.docker.session.retry,
        }  # fmt: skip
        self.run = 2
        box.start_button.click()  # again, then quit Krita while it starts
        self.poll(lambda: box.runner.status.pid is not None or not box.runner.status.state.alive,
                  lambda: self.guarded(self.quit))  # fmt: skip

    def quit(self) -> None:
        status = self.docker.server_box.runner.status
        self.report["again"] = {"pid": status.pid, "state": status.state.value}
        self.at("quit")
        self.report["ok"] = True
        self.finish()

    def finish(self) -> None:
        if OUT:
            with open(OUT, "w", encoding="utf-8") as f:
                json.dump(self.report, f)
        if self.doc is not None:
            self.doc.setModified(False)
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(Launch(Krita.instance()))
