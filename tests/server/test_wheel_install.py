"""A user's install (issue 15 item 5): ``pip wheel .`` from the sources, installed into a
fresh virtual environment that sees nothing of this checkout or of the test environment.

What it proves: the wheel carries everything the CLI and ``sfumato package`` need (every
source file and package data file of ``server/sfumato``, both plugins' sources); the
``sfumato`` entry point runs with only the base dependencies; ``sfumato package all`` there
builds both zips byte for byte as the checkout does; ``sfumato doctor`` there names the
missing torch and the command that installs it. What it does not prove: the server extras
(torch, diffusers …) resolve and serve — no torch is downloaded here, and the server suite
runs them from the checkout — nor other platforms or Python versions.

The wheel's base dependencies come from a wheelhouse beside the packaging caches, filled from
the package index the first time (the versions this environment has) and offline after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from sfumato import __version__

ROOT = Path(__file__).resolve().parents[2]
BASE = ("numpy", "msgpack", "websockets")


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def sources() -> list[str]:
    """The files a release is built from: tracked, or new and not ignored."""
    listing = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def wheelhouse() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sfumato"
    house = Path(os.environ.get("SFUMATO_INSTALL_CACHE") or default / "install-test")
    pins = [f"{name}=={metadata.version(name)}" for name in BASE]
    have = {p.name.split("-")[0].lower() for p in house.glob("*.whl")}
    if not set(BASE) <= have:
        run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
            "--dest", house, *pins, cwd=ROOT)  # fmt: skip
    return house


def plain_env() -> dict[str, str]:
    """No PYTHONPATH, no virtual environment of ours: the fresh one must stand alone."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.mark.slow
def test_the_wheel_installs_alone_and_builds_both_zips(tmp_path: Path) -> None:
    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    files = sources()
    for name in files:  # a copy: the build writes build/ and *.egg-info beside the sources
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src, cwd=tmp_path)
    (wheel,) = dist.glob("sfumato-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"sfumato/{n.removeprefix('server/sfumato/')}" for n in files
                if n.startswith("server/sfumato/")}  # fmt: skip
    expected |= {f"sfumato/_plugins/{n}" for n in files
                 if n.startswith(("blender_addon/", "krita_plugin/"))}  # fmt: skip
    assert expected - names == set(), "files the wheel lacks"

    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    target = (*pip, "--python", python, "install", "-q", "--no-index")
    run(*target, "--no-deps", wheel, cwd=tmp_path)
    house = wheelhouse()
    run(
        *target, "--find-links", house, *(f"{n}=={metadata.version(n)}" for n in BASE), cwd=tmp_path
    )

    env, sfumato = plain_env(), venv / "bin" / "sfumato"
    assert run(sfumato, "--version", cwd=tmp_path, env=env).strip() == f"sfumato {__version__}"
    where = run(python, "-c", "import sfumato; print(sfumato.__file__)", cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's, not the checkout's

    # The same sources as a checkout builds them (the copy, not the live tree, which other
    # work may change meanwhile); this also fills the download caches when they are empty.
    copied = {**env, "PYTHONPATH": str(src / "server")}
    probe = "import sfumato.packaging as p; print(p.plugin_source('krita_plugin'))"
    assert run(sys.executable, "-c", probe, cwd=tmp_path, env=copied).strip() == str(
        src / "krita_plugin"
    )
    out = run(sys.executable, "-m", "sfumato.cli", "package", "all", "--out",
              tmp_path / "from-checkout", cwd=tmp_path, env=copied)  # fmt: skip
    checkout = [Path(line) for line in out.splitlines()]
    assert len(checkout) == 2
    printed = run(sfumato, "package", "all", "--out", tmp_path / "zips", cwd=tmp_path, env=env)
    installed = [Path(line) for line in printed.splitlines()]
    assert [p.name for p in installed] == [p.name for p in checkout]
    assert installed[0].name == f"sfumato-{__version__}.zip"  # Blender's first
    for ours, theirs in zip(installed, checkout, strict=True):
        with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
            assert a.namelist() == b.namelist(), ours.name
            differ = [n for n in a.namelist() if a.read(n) != b.read(n)]
            assert differ == [], (ours.name, differ)
    with zipfile.ZipFile(installed[0]) as blender:
        members = set(blender.namelist())
        assert {"blender_manifest.toml", "__init__.py"} <= members
        assert any(m.startswith("wheels/sfumato-") for m in members)
    with zipfile.ZipFile(installed[1]) as krita:
        members = set(krita.namelist())
        assert {"sfumato.desktop", "sfumato_krita/__init__.py"} <= members
        assert "sfumato_krita/_vendor/sfumato/hostsession.py" in members

    # no torch in this environment: the doctor says so, with the install command, and exits 1
    doctor = subprocess.run([sfumato, "doctor", "--port", "0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert "FAIL torch   torch does not import" in doctor.stdout, doctor.stdout
    assert "fix: pip install 'sfumato[server]'" in doctor.stdout
