"""The extension: owns the plugin's one :class:`~.plugin.Plugin` (session and connection)
for the whole Krita instance, and the menu actions (Tools ▸ Scripts) that drive the docker of
the window they are used in, so a shortcut can start or cancel a job without the mouse.

``createActions`` gets a ``Window`` wrapper that Krita deletes once the call returns, so the
actions keep nothing of it: each finds its docker when it fires (issue 18, item 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from krita import Extension, Krita

from .docker import SfumatoDocker
from .plugin import Plugin
from .qt import QAction


class SfumatoExtension(Extension):
    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self.plugin = Plugin(self)

    def setup(self) -> None:
        Krita.instance().notifier().applicationClosing.connect(self.plugin.close)

    def docker(self) -> SfumatoDocker:
        """A new window's docker (the factory calls this): a view of the one plugin."""
        return SfumatoDocker(self.plugin)

    def createActions(self, window: Any) -> None:
        # Bound methods of this long-lived QObject, not closures over the action: a closure
        # that holds the action's wrapper forms a cycle Python's collector may break,
        # leaving the menu entry dead (seen in Krita 5.1.5).
        window.createAction(
            "sfumato_generate", "Sfumato: Generate", "tools/scripts"
        ).triggered.connect(self.generate)
        window.createAction("sfumato_cancel", "Sfumato: Cancel", "tools/scripts").triggered.connect(
            self.cancel
        )

    def generate(self) -> None:
        self._run(lambda d: d.generate())

    def cancel(self) -> None:
        self._run(lambda d: d.controller.cancel())

    def _run(self, act: Callable[[SfumatoDocker], None]) -> None:
        sender = self.sender()
        docker = find_docker(sender if isinstance(sender, QAction) else None)
        if docker is not None:
            docker.setVisible(True)  # the user sees the progress and any refusal
            act(docker)


def find_docker(action: QAction | None = None) -> SfumatoDocker | None:
    """The Sfumato docker of the window ``action`` belongs to (its action collection's main
    window), else of Krita's active window, else of any window."""
    owner = action.parent() if action is not None else None
    while owner is not None and not owner.isWidgetType():
        owner = owner.parent()
    candidates = [owner.window()] if owner is not None else []
    app = Krita.instance()
    if app.activeWindow() is not None:
        candidates.append(app.activeWindow().qwindow())
    candidates += [w.qwindow() for w in app.windows()]
    for qwindow in candidates:
        for dock in qwindow.findChildren(SfumatoDocker):
            return dock
    return None
