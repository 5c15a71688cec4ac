"""The launcher with real processes: a real ``sfumato serve`` from this checkout's ``.venv``
started, probed, reused by a second launcher, stopped, gone; and small stand-in programs
(shell scripts in a made-up environment, named as such) for the ends a real server rarely
reaches: dying at start, ignoring SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfumato.client import Client
from sfumato.hostlaunch import LocalServer, child_environment, local_address
from sfumato.hostserver import ServerState, ServerStatus

REPO = Path(__file__).resolve().parents[2]
SERVER_ENV = Path(os.environ.get("SFUMATO_SERVER_ENV", REPO / ".venv"))
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell stand-ins")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(server: LocalServer, done: set[ServerState], timeout: float = 120.0) -> ServerStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.status(tail=50)
        if status.state in done:
            return status
        time.sleep(0.05)
    raise AssertionError(f"still {server.status(tail=50)} after {timeout} s")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stand_in(folder: Path, script: str) -> Path:
    """A made-up environment whose ``bin/sfumato`` is ``script`` (a POSIX shell script)."""
    program = folder / "bin" / "sfumato"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def quiet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The child's data and cache folders in tmp (it inherits the environment)."""
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.delenv("SFUMATO_ENV", raising=False)
    return tmp_path


@pytest.mark.slow
def test_a_real_server_starts_is_reused_and_stops(quiet_home: Path) -> None:
    if not (SERVER_ENV / "bin" / "sfumato").exists():
        pytest.fail(f"the server environment {SERVER_ENV} is missing: run ./dev setup")
    url = f"ws://127.0.0.1:{free_port()}"
    ours = LocalServer(None, "test")
    first = ours.start(url, environment=str(SERVER_ENV), args=["--no-preload"])
    assert first.state is ServerState.CHECKING
    seen: list[ServerStatus] = []
    while not (status := ours.status(tail=50)).state.usable:
        assert status.state.alive, status
        if not seen or seen[-1].state is not status.state:
            seen.append(status)
        time.sleep(0.05)
    assert status.state is ServerState.READY and status.owned and status.pid
    assert any(line.startswith("Sfumato listening on ") for line in status.lines)
    assert ServerState.STARTING in {s.state for s in seen}
    with Client(url, name="test") as client:  # it serves this URL
        assert client.welcome is not None and client.welcome.ready

    again = ours.start(url, environment=str(SERVER_ENV))  # Start twice: the same server
    assert again.pid == status.pid and again.state is ServerState.READY

    theirs = LocalServer(None, "other")  # another plugin finds it running: reuses it
    theirs.start(url, environment="/no/such/env/needed/for/a/reuse")
    assert theirs.status().state is ServerState.NOT_FOUND  # … but only with an environment
    reused = theirs.start(url, environment=str(SERVER_ENV))
    reused = wait_for(theirs, {ServerState.REUSED, ServerState.READY})
    assert reused.state is ServerState.REUSED and not reused.owned and reused.pid is None
    theirs.close()  # never stops a server it did not start
    assert not gone(status.pid)
    with Client(url, name="test") as client:
        assert client.welcome is not None

    stopped = ours.stop(wait=True)
    assert stopped.state is ServerState.STOPPED and stopped.exit_code == 0
    assert gone(status.pid)
    with socket.socket() as s:  # the port is free again
        assert s.connect_ex(local_address(url)) != 0


HOST = """
import os, signal, sys, time
from sfumato.hostlaunch import LocalServer
from sfumato.hostserver import ServerState

server = LocalServer(None, "crashing-host")
server.start(sys.argv[1], environment=sys.argv[2], args=["--no-preload"])
deadline = time.monotonic() + 120
while (status := server.status()).state is not ServerState.READY:
    if not status.state.alive or time.monotonic() > deadline:
        sys.exit(f"no server: {status}")
    time.sleep(0.05)
print(status.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # a host crash: no close(), no atexit, no SIGTERM sent
"""


def ended(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (its parent, the host, was killed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return gone(pid)
    return state in ("Z", "X")


@pytest.mark.slow
def test_a_server_goes_when_the_host_that_started_it_is_killed(quiet_home: Path) -> None:
    """Its standard input is a pipe only the host holds: the host killed, the pipe closes and
    the server stops as on SIGTERM (the port free again), instead of running for nobody."""
    if not (SERVER_ENV / "bin" / "sfumato").exists():
        pytest.fail(f"the server environment {SERVER_ENV} is missing: run ./dev setup")
    url = f"ws://127.0.0.1:{free_port()}"
    host = subprocess.run(
        [sys.executable, "-c", HOST, url, str(SERVER_ENV)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert host.returncode == -signal.SIGKILL, host.stderr
    pid = int(host.stdout.split()[0])
    deadline = time.monotonic() + 30
    while not ended(pid):
        assert time.monotonic() < deadline, f"server {pid} outlived the host that started it"
        time.sleep(0.1)
    with socket.socket() as s:
        assert s.connect_ex(local_address(url)) != 0, "the port is still held"


def test_a_port_held_by_another_program_is_reported_and_nothing_starts(
    tmp_path: Path, quiet_home: Path
) -> None:
    env = stand_in(tmp_path / "env", f"touch {tmp_path / 'ran'}\nsleep 30\n")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        def answer() -> None:  # an HTTP server that is not Sfumato
            for _ in range(2):
                conn, _ = other.accept()
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                conn.close()

        threading.Thread(target=answer, daemon=True).start()
        launcher = LocalServer(None, "test")
        launcher.start(f"ws://127.0.0.1:{port}", environment=str(env))
        status = wait_for(launcher, {ServerState.PORT_TAKEN, ServerState.STARTING}, 30)
    assert status.state is ServerState.PORT_TAKEN and not status.owned
    assert f"port {port} on 127.0.0.1 is used by another program" in status.message
    assert "another port" in status.message
    assert not (tmp_path / "ran").exists()


def test_a_server_that_dies_at_start_gives_its_code_and_lines(
    tmp_path: Path, quiet_home: Path
) -> None:
    env = stand_in(
        tmp_path / "env", 'echo "starting $*"\necho "ImportError: no torch" >&2\nexit 3\n'
    )
    launcher = LocalServer(None, "test")
    launcher.start(f"ws://127.0.0.1:{free_port()}", environment=str(env), args=["--model", "x"])
    status = wait_for(launcher, {ServerState.EXITED}, 30)
    assert status.exit_code == 3 and "ImportError: no torch" in status.message
    assert status.lines[0].startswith("starting serve --host 127.0.0.1 --port ")
    assert status.lines[0].endswith("--model x")


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path, quiet_home: Path) -> None:
    port = free_port()
    script = f"trap '' TERM\necho 'Sfumato listening on ws://127.0.0.1:{port}'\nwhile :; do sleep 1; done\n"
    launcher = LocalServer(None, "test")
    launcher.start(f"ws://127.0.0.1:{port}", environment=str(stand_in(tmp_path / "env", script)))
    loading = wait_for(launcher, {ServerState.LOADING, ServerState.EXITED}, 30)
    assert loading.state is ServerState.LOADING and loading.pid is not None
    stopped = launcher.stop(wait=True, grace=0.5)
    assert stopped.state is ServerState.STOPPED and stopped.exit_code == -9
    assert gone(loading.pid)


def test_a_wrong_path_or_url_says_the_fix_at_once(tmp_path: Path, quiet_home: Path) -> None:
    launcher = LocalServer(None, "test")
    status = launcher.start("ws://127.0.0.1:8746", environment=str(tmp_path / "nope"))
    assert status.state is ServerState.NOT_FOUND and "does not exist" in status.message
    env = str(stand_in(tmp_path / "env", "exit 0\n"))
    for url, words in [
        ("ws://render-box:8746", "another machine"),
        ("ws://127.0.0.1", "names no port"),
        ("wss://127.0.0.1:8746", "wss://"),
        ("http://127.0.0.1:8746", "must start with ws://"),
    ]:
        status = launcher.start(url, environment=env)
        assert status.state is ServerState.FAILED and words in status.message, (url, status)


def test_the_child_gets_no_host_python_settings_and_the_token_by_environment() -> None:
    host = {"PYTHONHOME": "/blender/python", "PYTHONPATH": "/krita/pykrita", "PATH": "/bin"}
    env = child_environment("s3cret", {**host, "SFUMATO_TOKEN": "old"})
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env and env["PATH"] == "/bin"
    assert env["SFUMATO_TOKEN"] == "s3cret" and env["PYTHONUNBUFFERED"] == "1"
    assert "SFUMATO_TOKEN" not in child_environment("", {"SFUMATO_TOKEN": "old"})


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """Every launcher a test made is closed: no process outlives its test."""
    yield
    from sfumato import hostlaunch

    hostlaunch._stop_all()
