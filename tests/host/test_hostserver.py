"""The pure half of "Start a local server": finding an environment, reading ``sfumato
serve``'s log, and the launcher's states. Real folders and files (tmp_path); no processes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfumato.hostserver import (
    ENV_FOLDER,
    LOG_LINES,
    Found,
    NotFound,
    ServerState,
    Stage,
    Tracker,
    command_in,
    find_environment,
    parse_line,
    serve_arguments,
    user_data_dir,
)

NOWHERE = {"HOME": "/nonexistent-home"}  # no user data folder, no $SFUMATO_ENV


def program(path: Path, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | (stat.S_IXUSR if executable else 0))
    return path


def no_path(_name: str) -> None:
    return None


# ---------------------------------------------------------------------- discovery

LAYOUTS = st.sampled_from(["sfumato", "python3", "python", "none", "not-executable"])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=40)
@given(layout=LAYOUTS, windows=st.booleans(), as_file=st.booleans())
def test_an_environment_folder_or_its_program_gives_the_command(
    tmp_path_factory: pytest.TempPathFactory, layout: str, windows: bool, as_file: bool
) -> None:
    env = tmp_path_factory.mktemp("env")
    bindir = env / ("Scripts" if windows else "bin")
    suffix = ".exe" if windows else ""
    target = None
    if layout in ("sfumato", "python3", "python"):
        name = layout if not (windows and layout == "python3") else "python"
        target = program(bindir / f"{name}{suffix}")
    elif layout == "not-executable":
        program(bindir / f"sfumato{suffix}", executable=windows)  # Windows has no x bit
        if windows:
            target = bindir / "sfumato.exe"
    given_path = target if (as_file and target is not None) else env
    got = command_in(given_path, windows)
    if target is None:
        assert got is None
    elif target.name.startswith("python"):
        assert got == (str(target), "-m", "sfumato.cli")
    else:
        assert got == (str(target),)


def test_the_configured_path_wins_and_a_wrong_one_says_the_fix(tmp_path: Path) -> None:
    beside = tmp_path / "plugins" / ENV_FOLDER
    program(beside / "bin" / "sfumato")
    plugin = tmp_path / "plugins" / "sfumato"
    chosen = program(tmp_path / "mine" / "bin" / "sfumato")
    found = find_environment(str(tmp_path / "mine"), plugin, NOWHERE, no_path, "linux")
    assert found == Found((str(chosen),), f"the configured environment {tmp_path / 'mine'}")

    missing = find_environment(str(tmp_path / "typo"), plugin, NOWHERE, no_path, "linux")
    assert isinstance(missing, NotFound)  # a wrong setting never falls back to another place
    assert f"{tmp_path / 'typo'} does not exist" in missing.message
    assert "bin/sfumato" in missing.message and "clear it" in missing.message

    empty = tmp_path / "empty"
    empty.mkdir()
    bare = find_environment(str(empty), plugin, NOWHERE, no_path, "linux")
    assert isinstance(bare, NotFound) and "holds no bin/sfumato and no Python" in bare.message


def test_automatic_places_in_order(tmp_path: Path) -> None:
    plugin = tmp_path / "extensions" / "sfumato"
    data = tmp_path / "data"
    environ = {"XDG_DATA_HOME": str(data), "HOME": str(tmp_path)}
    on_path = "/usr/local/bin/sfumato"

    def which(name: str) -> str | None:
        return on_path if name == "sfumato" else None

    assert find_environment("", plugin, environ, which, "linux") == Found(
        (on_path,), f"{on_path} (on PATH)"
    )
    user = program(data / ENV_FOLDER / "bin" / "python3")
    found = find_environment("", plugin, environ, which, "linux")
    assert isinstance(found, Found) and found.command == (str(user), "-m", "sfumato.cli")
    beside = program(plugin.parent / ENV_FOLDER / "bin" / "sfumato")
    found = find_environment("", plugin, environ, which, "linux")
    assert isinstance(found, Found) and found.command == (str(beside),)
    assert "found automatically" in found.source
    named = program(tmp_path / "studio" / "bin" / "sfumato")
    found = find_environment("", plugin, {**environ, "SFUMATO_ENV": str(named)}, which, "linux")
    assert isinstance(found, Found) and found.command == (str(named),)
    wrong = find_environment("", plugin, {**environ, "SFUMATO_ENV": "/no/such"}, which, "linux")
    assert isinstance(wrong, NotFound) and "$SFUMATO_ENV" in wrong.message


def test_nothing_anywhere_names_every_place_and_the_install_command(tmp_path: Path) -> None:
    got = find_environment("", tmp_path / "pykrita" / "sfumato_krita", NOWHERE, no_path, "linux")
    assert isinstance(got, NotFound)
    assert str(tmp_path / "pykrita" / ENV_FOLDER) in got.message
    assert "PATH" in got.message and "pip install 'sfumato[server]'" in got.message


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {"HOME": "/h"}, "/h/.local/share"),
        ("linux", {"HOME": "/h", "XDG_DATA_HOME": "/x"}, "/x"),
        ("darwin", {"HOME": "/h"}, "/h/Library/Application Support"),
        ("win32", {"USERPROFILE": "C:/u", "LOCALAPPDATA": "C:/u/L"}, "C:/u/L"),
    ],
)
def test_user_data_folder_per_platform(platform: str, environ: dict, expected: str) -> None:
    assert user_data_dir(environ, platform) == Path(expected)


# ---------------------------------------------------------------------- the log

# Lines as `sfumato serve` writes them (service/__init__.py, service/worker.py, engine/loader.py)
START = [
    "Sfumato listening on ws://127.0.0.1:40825",
    "2026-12-02 03:33:04,910 WARNING sfumato.server: signing content credentials with a local",
    "2026-12-02 03:33:04,913 INFO sfumato.worker: preloading tiny-sd",
    "2026-12-02 03:33:15,779 INFO sfumato.worker: engine on cpu",
    "2026-12-02 03:33:15,800 INFO sfumato.worker: loading: building the tiny sd15 model (random "
    "weights, first use only)",
    "2026-12-02 03:33:16,100 INFO sfumato.worker: loading: moving tiny-sd to cpu",
    "2026-12-02 03:33:16,277 INFO sfumato.worker: ready: model tiny-sd (sd15) on cpu, float32",
]


def test_the_start_of_a_real_log_reads_as_rising_progress_then_ready() -> None:
    events = [e for e in map(parse_line, START) if e is not None]
    assert [e.stage for e in events] == [Stage.LISTENING] + [Stage.LOADING] * 4 + [Stage.READY]
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[-1] == 100 and percents[0] > 0
    assert events[-1].text == "model tiny-sd (sd15) on cpu, float32"


@pytest.mark.parametrize(
    ("line", "stage", "percent"),
    [
        ("x INFO sfumato.worker: loading: downloading sd15 42 %", Stage.LOADING, 42),
        ("x INFO sfumato.worker: loading: step 7.5% done", Stage.LOADING, 7),
        ("x WARNING sfumato.worker: preloading sd15 failed: weights missing", Stage.LOAD_FAILED, 100),
        ("sfumato: cannot use: error while attempting to bind on address ('127.0.0.1', 8746): "
         "address already in use; check the path", Stage.PORT_IN_USE, 0),
    ],
)  # fmt: skip
def test_special_lines(line: str, stage: Stage, percent: int) -> None:
    event = parse_line(line)
    assert event is not None and (event.stage, event.percent) == (stage, percent)


@given(st.text())
def test_any_line_parses_or_is_ignored_and_percent_stays_in_range(line: str) -> None:
    event = parse_line(line)
    assert event is None or 0 <= event.percent <= 100


# ---------------------------------------------------------------------- the state machine

ANY_LINE = st.one_of(st.sampled_from(START), st.text(max_size=80))


def started(url: str = "ws://127.0.0.1:8746") -> Tracker:
    t = Tracker()
    t.begin(url)
    t.spawned(4242, "the configured environment /env")
    return t


def test_a_start_goes_starting_loading_ready_and_a_stop_ends_stopped() -> None:
    t = started()
    assert t.state is ServerState.STARTING and t.owned and t.pid == 4242
    seen = []
    for line in START:
        t.feed(line + "\n")
        seen.append((t.state, t.percent))
    assert seen[0] == (ServerState.LOADING, 10)
    assert seen[-1] == (ServerState.READY, 100) and t.message.startswith("ready: model tiny-sd")
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    t.stopping()
    assert t.state is ServerState.STOPPING
    t.exited(0)
    assert t.state is ServerState.STOPPED and t.exit_code == 0
    assert t.status().lines[-1] == START[-1]


def test_loading_message_shows_the_percent() -> None:
    t = started()
    for line in START[:6]:
        t.feed(line)
    assert t.state is ServerState.LOADING and t.message.startswith("loading models 90 %")


def test_an_exit_on_its_own_gives_the_code_and_last_lines() -> None:
    t = started()
    for line in ("Traceback (most recent call last):", "ImportError: no module named torch"):
        t.feed(line)
    t.exited(1)
    status = t.status()
    assert status.state is ServerState.EXITED and status.exit_code == 1
    assert "code 1" in status.message and "ImportError: no module named torch" in status.message
    assert "press Start again" in status.message


def test_a_port_in_use_exit_says_port_taken_with_the_fix() -> None:
    t = started("ws://127.0.0.1:9911")
    t.feed("sfumato: cannot use: error while attempting to bind: address already in use")
    t.exited(1)
    assert t.state is ServerState.PORT_TAKEN
    assert "port 9911 is taken" in t.message and "another port" in t.message


def test_a_model_that_failed_to_load_is_ready_with_the_problem() -> None:
    t = started()
    t.feed(START[0])
    t.feed("x WARNING sfumato.worker: preloading sd15 failed: no weights; run sfumato models pull")
    assert t.state is ServerState.READY and t.state.usable
    assert "did not load" in t.message and "models pull" in t.problem


def test_begin_forgets_the_last_run() -> None:
    t = started()
    t.feed(START[0])
    t.exited(3)
    t.begin("ws://127.0.0.1:1")
    assert t.state is ServerState.CHECKING and not t.lines and t.exit_code is None and not t.owned


@settings(max_examples=60)
@given(
    lines=st.lists(ANY_LINE, max_size=LOG_LINES + 40),
    stop=st.booleans(),
    code=st.integers(-15, 255),
)
def test_any_output_keeps_the_machine_sane(lines: list[str], stop: bool, code: int) -> None:
    """Progress never goes back, the ring stays bounded, READY is never left by output, and
    the process's end always lands in one end state."""
    t = started()
    last_percent, was_ready = 0, False
    for line in lines:
        t.feed(line)
        assert t.percent >= last_percent and 0 <= t.percent <= 100
        assert len(t.lines) <= LOG_LINES
        was_ready = was_ready or t.state is ServerState.READY
        if was_ready:
            assert t.state is ServerState.READY
        assert t.state in (ServerState.STARTING, ServerState.LOADING, ServerState.READY)
        last_percent = t.percent
    if stop:
        t.stopping()
    t.exited(code)
    ends = {ServerState.STOPPED} if stop else {ServerState.EXITED, ServerState.PORT_TAKEN}
    assert t.state in ends and not t.state.alive and t.exit_code == code


def test_reused_and_port_taken_are_not_ours() -> None:
    t = Tracker()
    t.begin("ws://127.0.0.1:8746")
    t.reused("0.9.0")
    assert t.state.usable and not t.owned and "will not stop it" in t.message
    t.begin("ws://127.0.0.1:8746")
    t.port_taken("port 8746 on 127.0.0.1 is used by another program")
    assert not t.state.usable and not t.state.alive and not t.owned


@given(
    extra=st.lists(
        st.sampled_from(["--host", "--port", "0.0.0.0", "9", "--model", "sd15", "--port=3", "-v"]),
        max_size=8,
    )
)
def test_the_urls_host_and_port_win_over_extra_arguments(extra: list[str]) -> None:
    args = serve_arguments("127.0.0.1", 8746, extra)
    assert args[:5] == ["serve", "--host", "127.0.0.1", "--port", "8746"]
    rest = args[5:]
    assert "--host" not in rest and "--port" not in rest
    assert not any(a.startswith(("--host=", "--port=")) for a in rest)
    it = iter(extra)
    assert all(arg in it for arg in rest)  # the rest keeps the user's order
    flag_values = {i + 1 for i, a in enumerate(extra) if a in ("--host", "--port")}
    for i, arg in enumerate(extra):  # a flag of the user's, not a --host/--port value, is kept
        if arg in ("--model", "-v") and i not in flag_values:
            assert arg in rest


def test_with_preload_off_listening_means_ready() -> None:
    t = started()
    t.feed(
        "2026-12-02 03:33:04,913 INFO sfumato.server: preload off: tiny-sd loads at the first job"
    )
    assert t.state is ServerState.STARTING  # not listening yet: a connect would fail
    t.feed(START[0])
    assert t.state is ServerState.READY and "loads at the first job" in t.message
