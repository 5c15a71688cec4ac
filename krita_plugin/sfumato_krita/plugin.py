"""What one Krita instance runs, however many windows it has (issue 10, item 2): one
session, one connection, one client identity, one retry timer. The extension makes it once;
every window's docker is a view of it (the factory hands it over), so a second window
neither opens a second connection nor takes a new client id that could not fetch the first
one's results.
"""

from __future__ import annotations

from typing import Any

from krita import Krita

from .bridge import Bridge
from .controller import Controller
from .jobs import Mode
from .live import LiveController
from .model import RETRY_S, Link, Session, Settings
from .qt import QObject, QTimer
from .serverbox import ServerRunner


class Plugin(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = Session(load_settings())
        self.bridge = Bridge(self._events, self)
        self.controller = Controller(self.session, self.bridge, is_open)
        self.live = LiveController(self.session, self.bridge, is_open, self)  # Krita Live
        self._retry = QTimer(self, singleShot=True, interval=RETRY_S * 1000)
        self._retry.timeout.connect(self._reconnect)
        self._started = False
        self.server = ServerRunner(self)  # "Start a local server" (the docker's ServerBox)

    def start(self) -> None:
        """Connect once, when the first docker shows up (Krita's settings are readable by
        then), to the remembered or default URL."""
        if not self._started:
            self._started = True
            if self.session.settings.url:
                self.connect_server()

    def connect_server(self) -> None:
        s = self.session.settings
        self.session.connecting()
        self.bridge.connect_to(s.url, s.token, self.session.host.client_id)

    def close(self) -> None:
        self._retry.stop()
        self.live.stop()
        self.bridge.close()
        self.server.close()  # the server this plugin started goes with Krita

    def _events(self, events: list[object]) -> None:
        self.controller.handle(self.live.take(events))
        if self.session.retry and not self._retry.isActive():
            self._retry.start()

    def _reconnect(self) -> None:
        if self.session.retry and self.session.link is Link.DISCONNECTED:
            self.connect_server()


def is_open(doc: Any) -> bool:
    return any(d == doc for d in Krita.instance().documents())


def load_settings() -> Settings:
    app, s = Krita.instance(), Settings()
    s.url = app.readSetting("sfumato", "url", "") or s.url
    s.token = app.readSetting("sfumato", "token", "")
    s.prompt = app.readSetting("sfumato", "prompt", "")
    s.negative = app.readSetting("sfumato", "negative", "")
    s.server_env = app.readSetting("sfumato", "server_env", "")
    s.server_args = app.readSetting("sfumato", "server_args", "")
    mode = app.readSetting("sfumato", "mode", s.mode.value)
    s.mode = Mode(mode) if mode in {m.value for m in Mode} else s.mode
    return s


def save_settings(s: Settings) -> None:
    app = Krita.instance()
    for key in ("url", "token", "prompt", "negative", "server_env", "server_args"):
        app.writeSetting("sfumato", key, getattr(s, key))
    app.writeSetting("sfumato", "mode", s.mode.value)
