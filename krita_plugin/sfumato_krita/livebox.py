"""The docker's Live controls (issue 12, item 3): the Live toggle and Apply, which sit in the
Generate row, and Live's status line, which takes the progress bar's place while Live is on
(so the docker is no taller with Live than without). Widgets only: the state and the
decisions are ``live.LiveController``'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from krita import Krita

from .live import LiveController
from .qt import QCheckBox, QHBoxLayout, QLabel, QPushButton, QWidget


class LiveBox(QWidget):
    """The toggle and Apply, in one row; :attr:`status` is placed by the docker."""

    def __init__(self, live: LiveController, before_start: Callable[[], None]) -> None:
        super().__init__()
        self.live = live
        self._before_start = before_start  # the docker copies its widgets to the settings
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.toggle = QCheckBox("Live")
        self.toggle.setToolTip(
            "refine the selection (or the canvas) at the current Strength a moment after "
            "each change, into the layer 'Sfumato live'"
        )
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("copy the live result into a new layer, with its history")
        row.addWidget(self.toggle)
        row.addWidget(self.apply_button)
        self.status = QLabel(wordWrap=True)
        self.toggle.toggled.connect(self._toggled)
        self.apply_button.clicked.connect(self.live.apply)
        unsubscribe = live.subscribe(self.render)
        self.destroyed.connect(lambda *_: unsubscribe())
        self.render()

    def _toggled(self, on: bool) -> None:
        if on == self.live.on:
            return
        if on:
            self._before_start()
            self.live.start(active_document())
        else:
            self.live.stop()
        self.render()

    def render(self) -> None:
        on = self.live.on
        if self.toggle.isChecked() != on:
            self.toggle.blockSignals(True)
            self.toggle.setChecked(on)
            self.toggle.blockSignals(False)
        self.apply_button.setEnabled(on and self.live.state.shown is not None)
        self.status.setText(self.live.state.status())
        self.status.setVisible(on or bool(self.live.state.message))


def active_document() -> Any:
    return Krita.instance().activeDocument()
