"""Test helper loaded by the full Krita GUI (tests/krita/conftest.py), never shipped.

It installs the plugin zip the way docs/krita.md tells a user to: it triggers Krita's own
*Tools ▸ Scripts ▸ Import Python Plugin from File…* action (``plugin_importer_file``, from
Krita's bundled plugin_importer), and answers the dialogs that action opens as a user would —
the file dialog gets the zip, "Activate Plugins?" gets Yes — recording every dialog's text, so
an "Error during import" reaches the test verbatim. Then it quits through Krita's own action.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Any

from krita import Extension, Krita
from PyQt5.QtCore import QMetaObject, Qt, QTimer
from PyQt5.QtWidgets import QApplication, QFileDialog, QLineEdit, QMessageBox

ZIP = os.environ.get("SFUMATO_INSTALL_ZIP", "")
OUT = os.environ.get("SFUMATO_INSTALL_OUT", "")
TIMEOUT = 60.0


class Install(Extension):
    def setup(self) -> None:
        self.report: dict[str, Any] = {"ok": False, "dialogs": []}
        self.started = 0.0
        self.done = False
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(1000, self.install)
        )

    def createActions(self, window: Any) -> None:
        pass

    def install(self) -> None:
        try:
            action = Krita.instance().action("plugin_importer_file")
            self.report["action"] = None if action is None else action.text()
            if action is None:
                raise RuntimeError(
                    "Krita has no plugin_importer_file action (plugin importer off?)"
                )
            self.started = time.monotonic()
            QTimer.singleShot(200, self.answer)
            action.trigger()  # runs the dialogs in nested event loops; `answer` drives them
            app = Krita.instance()
            self.report["enabled"] = app.readSetting("python", "enable_sfumato_krita", "")
            self.report["resources"] = app.getAppDataLocation()
            self.report["ok"] = True
        except Exception:  # reported to the test through the file; Krita must still quit
            self.report["error"] = traceback.format_exc()
        self.finish()

    def answer(self) -> None:
        """Called from timers inside the dialogs' event loops: act on the open dialog. The
        next call is scheduled first, on a new timer: Qt does not fire a timer again while
        its slot runs, and a click here may open the next dialog (a nested loop) before
        returning."""
        if self.done:
            return
        QTimer.singleShot(200, self.answer)
        if time.monotonic() - self.started > TIMEOUT:
            self.report["error"] = "the import dialogs did not finish in time"
            self.finish()
            return
        widget = QApplication.activeModalWidget()
        if widget is None or not widget.isVisible():
            return
        if isinstance(widget, QFileDialog):
            self.report["dialogs"].append(["file", widget.windowTitle()])
            # type the zip's path into the file name box, then press Open (accept() is
            # protected in PyQt; its slot is not)
            widget.findChild(QLineEdit, "fileNameEdit").setText(ZIP)
            QMetaObject.invokeMethod(widget, "accept", Qt.QueuedConnection)
        elif isinstance(widget, QMessageBox):
            self.report["dialogs"].append([widget.windowTitle(), widget.text()])
            yes = widget.button(QMessageBox.Yes)
            (yes or widget.button(QMessageBox.Ok) or widget.buttons()[0]).click()
        else:
            self.report["dialogs"].append(["unexpected", type(widget).__name__])
            widget.close()

    def finish(self) -> None:
        self.done = True
        if OUT:
            with open(OUT, "w", encoding="utf-8") as f:
                json.dump(self.report, f)
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(Install(Krita.instance()))
