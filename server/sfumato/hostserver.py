"""The pure half of "Start a local server" (issue 15, item 4): where a Sfumato environment
is, what ``sfumato serve``'s log lines say about its start, and the launcher's state — no
processes, no threads, no sockets here (``hostlaunch`` does the I/O), so both plugins show the
same states and the same fixes, and every part is tested without a host or a server.

Where the plugins look for an environment, first match wins (docs/quickstart.md, "Let the
plugin start the server"):

1. the path in the plugin's settings — an environment folder (a venv or conda env holding
   ``bin/sfumato``, ``Scripts/sfumato.exe``, or at least its Python), the ``sfumato``
   executable itself, or a Python executable of such an environment. A path that is set but
   holds none of these is an error with the fix: it never falls through to another place,
   since the user asked for that one;
2. ``$SFUMATO_ENV`` (same forms), for studios that install one environment for everyone;
3. a folder named ``sfumato-env`` beside the plugin's own folder (Blender:
   ``extensions/user_default/sfumato-env``; Krita: ``pykrita/sfumato-env``), then the same
   name in the user's data folder (``~/.local/share/sfumato-env``, ``%LOCALAPPDATA%``, or
   ``~/Library/Application Support`` on macOS);
4. ``sfumato`` on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

ENV_FOLDER = "sfumato-env"  # the folder name found automatically (beside the plugin, user data)
ENV_VARIABLE = "SFUMATO_ENV"
LOG_LINES = 200  # the ring of the server's last log lines kept in memory
INSTALL_HINT = (
    "install the server with `python3 -m venv sfumato-env && sfumato-env/bin/pip install "
    "'sfumato[server]'` (docs/quickstart.md), then set its folder as the Sfumato environment"
)

Which = Callable[[str], str | None]


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Found:
    """A Sfumato environment: ``command`` runs its ``sfumato`` (add ``serve …``);
    ``source`` says how it was found (shown to the user)."""

    command: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class NotFound:
    """No environment: ``message`` says where it looked and the fix."""

    message: str


def _scripts(folder: Path, windows: bool) -> tuple[list[Path], list[Path]]:
    """The ``sfumato`` executables, then the Pythons, an environment folder may hold."""
    if windows:
        bins = [folder / "Scripts", folder]  # venv: Scripts\; conda: python.exe at the top
        return [b / "sfumato.exe" for b in bins], [b / "python.exe" for b in bins]
    bins = [folder / "bin"]
    return [b / "sfumato" for b in bins], [b / n for b in bins for n in ("python3", "python")]


def _is_program(path: Path, windows: bool) -> bool:
    return path.is_file() and (windows or os.access(path, os.X_OK))


def command_in(path: Path, windows: bool | None = None) -> tuple[str, ...] | None:
    """The command that runs ``sfumato`` from ``path`` (an environment folder, its
    ``sfumato`` executable or its Python), or None when ``path`` is none of those."""
    windows = sys.platform == "win32" if windows is None else windows
    if path.is_dir():
        programs, pythons = _scripts(path, windows)
        for program in programs:
            if _is_program(program, windows):
                return (str(program),)
        for python in pythons:
            if _is_program(python, windows):
                return (str(python), "-m", "sfumato.cli")
        return None
    if _is_program(path, windows):
        if path.name.lower().startswith("python"):
            return (str(path), "-m", "sfumato.cli")
        return (str(path),)
    return None


def user_data_dir(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The per-user data folder, where a user install may put ``sfumato-env``."""
    home = Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())
    if platform == "win32":
        return Path(environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    if platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")


def find_environment(
    configured: str,
    plugin_dir: Path | None,
    environ: Mapping[str, str] | None = None,
    which: Which = shutil.which,
    platform: str = sys.platform,
) -> Found | NotFound:
    """Where ``sfumato`` is, by the rule in this module's docstring."""
    environ = os.environ if environ is None else environ
    windows = platform == "win32"
    chosen = configured.strip().strip('"')
    if chosen:
        path = Path(os.path.expanduser(chosen))
        found = command_in(path, windows)
        if found is not None:
            return Found(found, f"the configured environment {path}")
        return NotFound(_not_there(path, "the Sfumato environment setting", windows))
    named = environ.get(ENV_VARIABLE, "").strip()
    if named:
        path = Path(os.path.expanduser(named))
        found = command_in(path, windows)
        if found is not None:
            return Found(found, f"${ENV_VARIABLE} ({path})")
        return NotFound(_not_there(path, f"${ENV_VARIABLE}", windows))
    places = [] if plugin_dir is None else [plugin_dir.parent / ENV_FOLDER]
    places.append(user_data_dir(environ, platform) / ENV_FOLDER)
    for place in places:
        found = command_in(place, windows)
        if found is not None:
            return Found(found, f"{place} (found automatically)")
    on_path = which("sfumato")
    if on_path:
        return Found((on_path,), f"{on_path} (on PATH)")
    looked = ", ".join(str(p) for p in places)
    return NotFound(
        f"no Sfumato environment found (looked in the setting, ${ENV_VARIABLE}, {looked} and "
        f"PATH); {INSTALL_HINT}"
    )


def _not_there(path: Path, what: str, windows: bool) -> str:
    inside = "Scripts\\sfumato.exe" if windows else "bin/sfumato"
    if not path.exists():
        problem = f"{path} does not exist"
    elif path.is_dir():
        problem = f"{path} holds no {inside} and no Python"
    else:
        problem = f"{path} is not a program"
    return (
        f"{what} points at no Sfumato environment: {problem}; set it to the folder of the "
        f"environment where the server is installed (the one holding {inside}), or clear it to "
        f"find one automatically — or {INSTALL_HINT}"
    )


# --------------------------------------------------------------------------- the log


class Stage(Enum):
    LISTENING = "listening"
    LOADING = "loading"
    READY = "ready"
    LOAD_FAILED = "load_failed"
    PORT_IN_USE = "port_in_use"
    DEFERRED = "deferred"  # preload is off: ready once listening


@dataclass(frozen=True)
class LogEvent:
    stage: Stage
    percent: int
    text: str


_WORKER = re.compile(r"\bsfumato\.worker: (?P<text>.*)$")
_DEFERRED = re.compile(r"\bsfumato\.server: preload off: (?P<text>.*)$")
_LISTENING = re.compile(r"^Sfumato listening on (?P<url>\S+)")
_PERCENT = re.compile(r"(?<![\d.])(?P<n>\d{1,3}(?:\.\d+)?)\s?%")
_IN_USE = re.compile(r"address already in use|only one usage of each socket address", re.I)
# What each of the worker's loading lines means for the progress bar (stages, not bytes:
# the server reports no byte counts while it loads; a line that carries "N %" wins).
# The worker logs "preloading NAME", "engine on DEVICE", then the loader's own steps as
# "loading: building …" / "loading: loading …" / "loading: moving … to DEVICE", then "ready: …".
_LOADING = (
    (re.compile(r"^preloading "), 20),
    (re.compile(r"^engine on "), 50),
    (re.compile(r"^loading: building "), 60),
    (re.compile(r"^loading: moving "), 90),
    (re.compile(r"^loading: "), 70),
)


def parse_line(line: str) -> LogEvent | None:
    """What one line of ``sfumato serve``'s output says about its start, if anything."""
    text = line.strip()
    if match := _LISTENING.match(text):
        return LogEvent(Stage.LISTENING, 10, f"listening on {match['url']}")
    if _IN_USE.search(text):
        return LogEvent(Stage.PORT_IN_USE, 0, text)
    if match := _DEFERRED.search(text):
        return LogEvent(Stage.DEFERRED, 0, match["text"])
    match = _WORKER.search(text)
    if match is None:
        return None
    said = match["text"]
    if said.startswith("ready: "):
        return LogEvent(Stage.READY, 100, said[len("ready: ") :])
    if said.startswith("preloading ") and " failed: " in said:
        return LogEvent(Stage.LOAD_FAILED, 100, said)
    for pattern, percent in _LOADING:
        if pattern.search(said):
            if explicit := _PERCENT.search(said):
                percent = max(0, min(99, int(float(explicit["n"]))))
            return LogEvent(Stage.LOADING, percent, said)
    return None


# --------------------------------------------------------------------------- the state


class ServerState(str, Enum):
    IDLE = "idle"  # nothing started yet
    NOT_FOUND = "not_found"  # no environment; the message is the fix
    FAILED = "failed"  # could not start it (a URL it cannot serve, a program that would not run)
    CHECKING = "checking"  # asking the URL whether a server runs there already
    STARTING = "starting"  # our process runs, not listening yet
    LOADING = "loading"  # listening; the default model loads (``percent``)
    READY = "ready"  # ours, listening, the model loaded (or its failure logged)
    REUSED = "reused"  # a server we did not start answers there: used, never stopped by us
    PORT_TAKEN = "port_taken"  # another program (or a server that refuses us) holds the port
    STOPPING = "stopping"
    STOPPED = "stopped"  # we stopped it
    EXITED = "exited"  # it ended by itself: ``exit_code`` and the last lines

    @property
    def usable(self) -> bool:
        """A host may connect now."""
        return self in (ServerState.READY, ServerState.REUSED)

    @property
    def alive(self) -> bool:
        """A process of ours may be running (Start is refused, Stop offered)."""
        return self in _ALIVE


_ALIVE = frozenset(
    {ServerState.CHECKING, ServerState.STARTING, ServerState.LOADING, ServerState.READY,
     ServerState.STOPPING}
)  # fmt: skip


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot for a host to draw: ``message`` is one line for the user (what happens
    now, or what to do), ``lines`` the server's last log lines."""

    state: ServerState
    message: str
    percent: int = 0
    url: str = ""
    owned: bool = False  # started by this plugin (only then stopped by it)
    pid: int | None = None
    exit_code: int | None = None
    lines: tuple[str, ...] = ()
    problem: str = ""  # READY, but the default model failed to load: why


class Tracker:
    """The launcher's state machine, fed by the launcher (its probe, the process's lines and
    exit). Pure and single-threaded: the launcher calls it under its lock."""

    def __init__(self, ring: int = LOG_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=ring)
        self._reset()

    def _reset(self) -> None:
        self.lines.clear()
        self.state = ServerState.IDLE
        self.message = "not started"
        self.percent = 0
        self.url = ""
        self.owned = False
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.problem = ""
        self._port_in_use = False
        self._deferred = ""  # preload off: what the server said instead

    def status(self, tail: int = LOG_LINES) -> ServerStatus:
        lines = tuple(self.lines)[-tail:] if tail > 0 else ()
        return ServerStatus(
            self.state, self.message, self.percent, self.url, self.owned, self.pid,
            self.exit_code, lines, self.problem,
        )  # fmt: skip

    # ------------------------------------------------------------------ the launcher's steps

    def begin(self, url: str) -> None:
        """A new start: forget the last run (its lines too)."""
        self._reset()
        self.url, self.state = url, ServerState.CHECKING
        self.message = f"checking {url} for a running server"

    def not_found(self, message: str) -> None:
        self.state, self.message, self.owned = ServerState.NOT_FOUND, message, False

    def failed(self, message: str) -> None:
        self.state, self.message, self.owned = ServerState.FAILED, message, False

    def reused(self, server: str) -> None:
        self.state, self.owned, self.percent = ServerState.REUSED, False, 100
        self.message = (
            f"a Sfumato server ({server}) already runs at {self.url}: using it (this plugin did "
            "not start it and will not stop it)"
        )

    def port_taken(self, message: str) -> None:
        self.state, self.message, self.owned = ServerState.PORT_TAKEN, message, False

    def spawned(self, pid: int, source: str) -> None:
        self.state, self.owned, self.pid = ServerState.STARTING, True, pid
        self.message = f"starting the server from {source}"

    def feed(self, line: str) -> None:
        """One line of the server's output."""
        line = line.rstrip("\r\n")
        if not line:
            return
        self.lines.append(line)
        event = parse_line(line)
        if event is None or self.state not in (ServerState.STARTING, ServerState.LOADING):
            if event is not None and event.stage is Stage.PORT_IN_USE:
                self._port_in_use = True
            return
        if event.stage is Stage.PORT_IN_USE:
            self._port_in_use = True
        elif event.stage is Stage.DEFERRED:
            self._deferred = event.text
        elif event.stage is Stage.LISTENING and self._deferred:
            self.state, self.percent = ServerState.READY, 100
            self.message = f"ready: {event.text} ({self._deferred})"
        elif event.stage is Stage.LISTENING:
            self.state, self.percent = ServerState.LOADING, max(self.percent, event.percent)
            self.message = f"{event.text}; loading the default model"
        elif event.stage is Stage.LOADING:
            self.state, self.percent = ServerState.LOADING, max(self.percent, event.percent)
            self.message = f"loading models {self.percent} %: {event.text}"
        elif event.stage is Stage.READY:
            self.state, self.percent, self.message = ServerState.READY, 100, f"ready: {event.text}"
        elif event.stage is Stage.LOAD_FAILED:
            self.state, self.percent = ServerState.READY, 100
            self.problem = event.text
            self.message = (
                f"the server runs, but its default model did not load ({event.text}); jobs on "
                "it fail until that is fixed — see the log lines, pick another model, or stop it"
            )

    def stopping(self) -> None:
        if self.state.alive:
            self.state, self.message = ServerState.STOPPING, "stopping the server"

    def exited(self, code: int) -> None:
        """Our process ended (after a stop, or by itself)."""
        self.exit_code = code
        if self.state is ServerState.STOPPING:
            self.state, self.message = ServerState.STOPPED, f"stopped (exit code {code})"
            return
        if self._port_in_use:
            port = self.url.rsplit(":", 1)[-1]
            self.state = ServerState.PORT_TAKEN
            self.message = (
                f"port {port} is taken by another program; close it, or put another port in "
                "the server URL and press Start again"
            )
            return
        last = " | ".join(list(self.lines)[-3:]) or "no output"
        self.state = ServerState.EXITED
        self.message = (
            f"the server exited with code {code}; its last lines: {last} — fix what they say "
            "(the log below has more) and press Start again"
        )


def serve_arguments(host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """``serve --host H --port P …``: the URL's host and port win over the same flags in
    ``extra`` (the host connects to the URL, so the server must listen there)."""
    kept: list[str] = []
    skip = False
    for arg in extra:
        if skip:
            skip = False
            continue
        if arg in ("--host", "--port"):
            skip = True
            continue
        if arg.startswith(("--host=", "--port=")):
            continue
        kept.append(arg)
    return ["serve", "--host", host, "--port", str(port), *kept]
