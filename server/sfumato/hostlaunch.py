"""The I/O half of "Start a local server" (issue 15, item 4): ask the configured URL whether a
Sfumato server runs there (a hello, not just a port check), else start ``sfumato serve`` as a
child process, read its output on a thread into the pure :class:`~sfumato.hostserver.Tracker`,
and stop it when asked or when the host quits — only a server this plugin started.

Host-neutral and torch-free (stdlib ``subprocess``, ``socket``, ``threading`` and the
Sfumato client): Blender polls :meth:`LocalServer.status` from a ``bpy.app.timers`` timer,
Krita from a ``QTimer``. Nothing here blocks the caller except :meth:`LocalServer.close`
(the host is quitting) and ``stop(wait=True)``.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from .client import Client, ConnectionFailed, check_url
from .hostserver import (
    Found,
    NotFound,
    ServerState,
    ServerStatus,
    Tracker,
    find_environment,
    serve_arguments,
)

STOP_GRACE = 10.0  # seconds SIGTERM gets (the server's own shutdown_grace) before SIGKILL
QUIT_GRACE = 5.0  # the same when the host quits: it waits for us
STOP_WITH_STDIN = "SFUMATO_STOP_WITH_STDIN"  # read by service.run (not imported: no service here)
PROBE_TIMEOUT = 3.0
LOCAL_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
# The host's Python settings would point the server's Python at the host's own packages
# (Blender's bundled Python, Krita's PYTHONPATH): the child gets none of them.
HOST_PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


def local_address(url: str) -> tuple[str, int]:
    """The host and port a local server must listen on for ``url``; ValueError with the
    fix for a URL no local server can serve."""
    try:
        text = check_url(url)
    except ConnectionFailed as exc:
        raise ValueError(str(exc)) from None
    parts = urllib.parse.urlsplit(text)
    host = LOCAL_HOSTS.get((parts.hostname or "").lower())
    if host is None:
        raise ValueError(
            f"the server URL {url!r} names another machine ({parts.hostname}); a local server "
            "can only be started for ws://127.0.0.1:PORT — set the URL to that, or start the "
            "server on that machine with `sfumato serve`"
        )
    if parts.scheme.lower() != "ws":
        raise ValueError(
            f"the server URL {url!r} uses wss://, which a local `sfumato serve` does not speak; "
            "use ws://127.0.0.1:PORT"
        )
    if parts.port is None:
        raise ValueError(
            f"the server URL {url!r} names no port; write it as ws://127.0.0.1:8746 (any free "
            "port) so the plugin knows where to start the server"
        )
    return host, parts.port


def child_environment(token: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the host's, without its Python settings; output unbuffered
    (lines arrive as they are written); the token through ``$SFUMATO_TOKEN``, never argv
    (other users can read a command line)."""
    env = dict(os.environ if environ is None else environ)
    for name in HOST_PYTHON_VARIABLES:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    # the server stops when its standard input (a pipe only this host holds) closes: when the
    # host quits or crashes, the server goes too (service.run); a server older than this
    # variable ignores it
    env[STOP_WITH_STDIN] = "1"
    if token:
        env["SFUMATO_TOKEN"] = token
    else:
        env.pop("SFUMATO_TOKEN", None)  # a server that wants a token this plugin cannot send
    return env


def probe(url: str, host: str, port: int, token: str, name: str) -> tuple[str, str]:
    """("free", "") when nothing listens; ("sfumato", server version) when a Sfumato server
    welcomes us; ("taken", the fix) when something else holds the port or the server there
    refuses us."""
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
    except OSError:
        return "free", ""
    client = Client(url, token or None, name=f"{name}-probe")
    try:
        welcome = client.connect(PROBE_TIMEOUT)
    except ConnectionFailed as exc:
        text = str(exc)
        if " refused us: " in text:  # its hello answer: a Sfumato server, not for us
            return "taken", (
                f"a Sfumato server at {url} refused this plugin ({text}); set the token it "
                "expects, or stop that server and press Start again"
            )
        return "taken", (
            f"port {port} on {host} is used by another program, not a Sfumato server; close it, "
            "or put another port in the server URL and press Start again"
        )
    finally:
        client.close()
    return "sfumato", welcome.server


class LocalServer:
    """One plugin's local server: start, watch, stop. Thread-safe; one per host process."""

    def __init__(self, plugin_dir: Path | None, name: str) -> None:
        self.plugin_dir = plugin_dir  # for the ``sfumato-env`` beside it (hostserver)
        self.name = name  # the probe's client name ("blender" → "blender-probe")
        self._lock = threading.Lock()
        self._tracker = Tracker()
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        _LIVE.add(self)

    # ------------------------------------------------------------------ the host's calls

    def status(self, tail: int = 8) -> ServerStatus:
        """A snapshot with the last ``tail`` log lines (cheap: for every redraw)."""
        with self._lock:
            return self._tracker.status(tail)

    def start(
        self, url: str, token: str = "", environment: str = "", args: Sequence[str] = ()
    ) -> ServerStatus:
        """Find the environment (at once: a wrong path says so now), then probe and start
        on a thread. A second Start while one runs changes nothing."""
        with self._lock:
            tracker = self._tracker
            if tracker.state.alive:
                return tracker.status()
            tracker.begin(url)
            try:
                host, port = local_address(url)
            except ValueError as exc:
                tracker.failed(str(exc))
                return tracker.status()
            found = find_environment(environment, self.plugin_dir)
            if isinstance(found, NotFound):
                tracker.not_found(found.message)
                return tracker.status()
            thread = threading.Thread(
                target=self._launch, args=(found, url, host, port, token, tuple(args)),
                name="sfumato-launch", daemon=True,
            )  # fmt: skip
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
            return tracker.status()

    def stop(self, wait: bool = False, grace: float = STOP_GRACE) -> ServerStatus:
        """Stop the server this plugin started (SIGTERM, then SIGKILL after ``grace``); a
        reused server is never touched. Returns at once unless ``wait``."""
        with self._lock:
            if not (self._tracker.owned or self._tracker.state is ServerState.CHECKING):
                return self._tracker.status()
            if self._tracker.state.alive and self._tracker.state is not ServerState.STOPPING:
                self._tracker.stopping()
            proc = self._proc
            if self._tracker.state is not ServerState.STOPPING or proc is None:
                return self._tracker.status()  # ended, or the probe has not spawned yet
        thread = threading.Thread(
            target=_terminate, args=(proc, grace), name="sfumato-stop", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        if wait:
            self.join(grace + 5.0)
        return self.status()

    def close(self) -> None:
        """The host is quitting (or the plugin unloads): stop our server and wait for it."""
        self.stop(wait=True, grace=QUIT_GRACE)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the launcher's threads (tests; a quitting host)."""
        for thread in list(self._threads):
            thread.join(timeout)

    # ------------------------------------------------------------------ the launch thread

    def _launch(
        self, found: Found, url: str, host: str, port: int, token: str, args: tuple[str, ...]
    ) -> None:
        kind, detail = probe(url, host, port, token, self.name)
        with self._lock:
            tracker = self._tracker
            if tracker.state is ServerState.STOPPING:  # Stop pressed while we probed
                tracker.state, tracker.message = ServerState.STOPPED, "not started (stopped)"
                return
            if kind == "sfumato":
                tracker.reused(detail)
                return
            if kind == "taken":
                tracker.port_taken(detail)
                return
            command = [*found.command, *serve_arguments(host, port, args)]
            try:
                proc = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
                    bufsize=1, env=child_environment(token), start_new_session=OWN_GROUP,
                    creationflags=GROUP_FLAGS,
                )  # fmt: skip
            except OSError as exc:
                tracker.failed(
                    f"could not run {command[0]} ({exc.strerror or exc}); check the Sfumato "
                    "environment setting, or reinstall the server there"
                )
                return
            self._proc = proc
            tracker.spawned(proc.pid, found.source)
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._lock:
                tracker.feed(line)
        code = proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        with self._lock:
            tracker.exited(code)
            if self._proc is proc:
                self._proc = None


# The server in its own process group: a Ctrl+C in the host's terminal does not reach it,
# and a stop reaches everything it started.
OWN_GROUP = sys.platform != "win32"  # start_new_session (POSIX)
GROUP_FLAGS = (
    getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    if sys.platform == "win32"
    else 0
)


def _terminate(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM (the server journals unfinished jobs and exits), SIGKILL after ``grace``."""
    _signal(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
        proc.wait()


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    if proc.poll() is not None:
        return  # reaped: its pid may be someone else's now
    try:
        if sys.platform == "win32":
            proc.terminate()  # TerminateProcess: Windows has no gentler signal for it
        else:
            os.killpg(proc.pid, sig)  # its own group (start_new_session): pgid == pid
    except ProcessLookupError:
        pass


_LIVE: weakref.WeakSet[LocalServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """The host quits: every server a plugin started goes with it (reused ones stay)."""
    for server in list(_LIVE):
        server.close()
