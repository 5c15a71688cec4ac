"""Menu actions (Tools ▸ Scripts) that drive the docker of the window they are used in, so
a shortcut can start or cancel a job without the mouse. The docker owns all state."""

from __future__ import annotations

from typing import Any

from krita import Extension

from .docker import SfumatoDocker


class SfumatoExtension(Extension):
    def setup(self) -> None:
        """Nothing to prepare: dockers are made per window by their factory."""

    def createActions(self, window: Any) -> None:
        generate = window.createAction("sfumato_generate", "Sfumato: Generate", "tools/scripts")
        generate.triggered.connect(lambda: _docker(window, lambda d: d.generate()))
        cancel = window.createAction("sfumato_cancel", "Sfumato: Cancel", "tools/scripts")
        cancel.triggered.connect(lambda: _docker(window, lambda d: d.controller.cancel()))


def _docker(window: Any, act: Any) -> None:
    for dock in window.qwindow().findChildren(SfumatoDocker):
        act(dock)
        return
