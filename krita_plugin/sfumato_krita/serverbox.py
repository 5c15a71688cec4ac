""" "Start a local server" in the docker (issue 15, item 4): the shared launcher
(``sfumato.hostlaunch``) driven by a :class:`ServerRunner` the plugin owns (one per Krita
instance, like the connection), and a foldable :class:`ServerBox` in every window's docker
that renders it — the environment path, extra arguments, Start/Stop, state, loading progress
and the last log lines.

The runner polls the launcher from a QTimer (never blocking Krita), connects the plugin once
the server is ready, and stops the server it started when Krita closes (the extension's
``applicationClosing`` → ``Plugin.close``; the launcher's atexit is the fallback). A server
that was already running on the URL is reused and never stopped.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfumato.hostlaunch import LocalServer
from sfumato.hostserver import ServerState, ServerStatus

from .model import Link
from .qt import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QObject,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    Qt,
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

POLL_MS = 250
LOG_SHOWN = 8
LOG_HEIGHT = 90


class ServerRunner(QObject):
    """The plugin's launcher and its poll; listeners get every new status."""

    def __init__(self, plugin: Any) -> None:
        super().__init__(plugin)
        self.plugin = plugin  # the Plugin: its session's settings, connect_server()
        self.server = LocalServer(Path(__file__).resolve().parent, "krita")
        self.status: ServerStatus = self.server.status(LOG_SHOWN)
        self._listeners: list[Callable[[ServerStatus], None]] = []
        self._connected_run: int | None = None
        self._stopped_by_us = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    def subscribe(self, listener: Callable[[ServerStatus], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def start(self) -> ServerStatus:
        s = self.plugin.session.settings
        try:
            args = shlex.split(s.server_args)
        except ValueError as exc:
            self.plugin.session.refuse(
                f"the server arguments cannot be read ({exc}); check the quotes"
            )
            return self.status
        self._connected_run, self._stopped_by_us = None, False
        self.server.start(s.url, s.token, s.server_env, args)
        self._timer.start()
        return self.poll()

    def stop(self) -> ServerStatus:
        self._stopped_by_us = True
        self.plugin.session.retry = False  # no reconnecting to a server we are stopping
        self.server.stop()
        self._timer.start()
        return self.poll()

    def close(self) -> None:
        """Krita is closing: the server we started goes with it (blocks a few seconds)."""
        self._timer.stop()
        self.server.close()

    def poll(self) -> ServerStatus:
        status = self.server.status(LOG_SHOWN)
        run = status.pid or 0
        if status.state.usable and self._connected_run != run:
            self._connected_run = run  # once per run: ours (its pid), or a reused one (0)
            if run or self.plugin.session.link is not Link.CONNECTED:
                self.plugin.connect_server()  # the URL it started (or found) a server on
        if self._stopped_by_us:
            self.plugin.session.retry = False
        if not status.state.alive:
            self._timer.stop()
        if status != self.status:
            self.status = status
            for listener in list(self._listeners):
                listener(status)
        return status


class ServerBox(QWidget):
    """The docker's "Local server" section, folded by default (its header shows the state)."""

    def __init__(self, runner: ServerRunner, store: Callable[[], None]) -> None:
        super().__init__()
        self.runner = runner
        self._store = store  # the docker's: URL and token into the settings first
        s = runner.plugin.session.settings
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        self.toggle = QToolButton(checkable=True, autoRaise=True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.RightArrow)
        self.toggle.toggled.connect(self._fold)
        box.addWidget(self.toggle)
        self.body = QWidget()
        inner = QVBoxLayout(self.body)
        inner.setContentsMargins(0, 0, 0, 0)
        self.environment = QLineEdit(
            s.server_env, placeholderText="environment: found automatically"
        )
        self.environment.setToolTip(
            "Folder of the Python environment the server is installed in (or its sfumato "
            "program). Empty: a sfumato-env folder beside the plugin, $SFUMATO_ENV, the user "
            "data folder's sfumato-env, or sfumato on PATH"
        )
        self.arguments = QLineEdit(
            s.server_args, placeholderText="extra arguments, e.g. --model sd15"
        )
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start server")
        self.stop_button = QPushButton("Stop")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(runner.stop)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        self.progress = QProgressBar(minimum=0, maximum=100, value=0)
        self.state = QLabel(wordWrap=True, textInteractionFlags=Qt.TextSelectableByMouse)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumHeight(LOG_HEIGHT)
        self.log.setLineWrapMode(QPlainTextEdit.NoWrap)
        for widget in (self.environment, self.arguments):
            inner.addWidget(widget)
        inner.addLayout(buttons)
        for widget in (self.progress, self.state, self.log):
            inner.addWidget(widget)
        self.body.setVisible(False)
        box.addWidget(self.body)
        unsubscribe = runner.subscribe(self.render)
        self.destroyed.connect(lambda *_: unsubscribe())
        self.render(runner.status)

    def start(self) -> None:
        s = self.runner.plugin.session.settings
        s.server_env, s.server_args = self.environment.text().strip(), self.arguments.text()
        self._store()  # the docker's URL and token too, and all of it saved
        self.runner.start()

    def _fold(self, unfolded: bool) -> None:
        self.body.setVisible(unfolded)
        self.toggle.setArrowType(Qt.DownArrow if unfolded else Qt.RightArrow)

    def render(self, status: ServerStatus) -> None:
        title = {
            ServerState.IDLE: "not started",
            ServerState.LOADING: f"loading {status.percent} %",
        }
        self.toggle.setText(
            f"Local server: {title.get(status.state, status.state.value.replace('_', ' '))}"
        )
        alive = status.state.alive
        self.start_button.setEnabled(not alive)
        self.stop_button.setEnabled(
            alive and status.owned and status.state is not ServerState.STOPPING
        )
        self.progress.setVisible(status.state in (ServerState.STARTING, ServerState.LOADING))
        self.progress.setValue(status.percent)
        self.progress.setFormat(f"loading models {status.percent} %")
        self.state.setText(status.message if status.state is not ServerState.IDLE else "")
        self.log.setPlainText("\n".join(status.lines))
        self.log.setVisible(bool(status.lines))
        if (
            status.state
            in (
                ServerState.NOT_FOUND,
                ServerState.FAILED,
                ServerState.EXITED,
                ServerState.PORT_TAKEN,
            )
            and not self.toggle.isChecked()
        ):
            self.toggle.setChecked(True)  # a problem unfolds the box: the fix is in view
