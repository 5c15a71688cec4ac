"""``sfumato package blender``: the Blender extension zip (Blender ≥ 4.2 extension format).

The zip holds ``blender_addon/`` as it is in the source tree, plus wheels for what the add-on
imports besides Blender's own Python: a slim wheel of sfumato (``__init__``, ``client``,
``protocol`` and the host session ``hostsession``/``hostlink`` only — never the server or the
engine, so nothing in Blender can reach torch) and msgpack and websockets for every platform
Blender ships, once per Python the claimed Blender releases embed (cp311 for 4.2 … 5.0, cp313
for 5.1 … 5.2). Blender installs the wheels that fit its platform and Python when the extension
is enabled, and refuses the extension outright on a Python no wheel is built for.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .. import __version__
from . import plugin_source

ADDON = plugin_source("blender_addon")  # the checkout's, or the installed wheel's copy
SFUMATO = Path(__file__).resolve().parents[1]
# Pinned so a build is reproducible and cacheable.
DEPENDENCIES = ("msgpack==1.1.2", "websockets==15.0.1")
# The Pythons of the Blender releases blender_manifest.toml claims: 4.2 … 5.0 embed 3.11,
# 5.1 and 5.2 embed 3.13. A release with another Python needs its wheels here first.
PYTHONS = ("3.11", "3.13")
# Blender platform name → pip --platform tags. pip does not widen a manylinux tag to the older
# ones, so linux names each; for macOS it does accept older versions of the tag given.
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                  "manylinux_2_5_x86_64", "manylinux1_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_10_13_x86_64",),
}  # fmt: skip
WHEELS_MARKER = "# wheels: filled in by `sfumato package blender`"
# A fixed timestamp keeps the zip's bytes the same from build to build.
EPOCH = (2024, 1, 1, 0, 0, 0)


def build_blender(out: Path) -> Path:
    """Build ``sfumato-<version>.zip`` into ``out`` and return its path."""
    if not (ADDON / "blender_manifest.toml").is_file():
        raise FileNotFoundError(
            f"{ADDON} has no blender_manifest.toml: package from a source checkout of Sfumato,"
            " or reinstall the sfumato wheel (it carries the add-on)"
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = [slim_wheel(Path(tmp)), *download_wheels(wheel_cache())]
        return _zip(out, wheels)


def _zip(out: Path, wheels: list[Path]) -> Path:
    manifest = with_wheels((ADDON / "blender_manifest.toml").read_text("utf-8"), wheels)
    version = re.search(r'^version\s*=\s*"([^"]+)"', manifest, re.M)
    target = out / f"sfumato-{version.group(1) if version else __version__}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        _write(z, "blender_manifest.toml", manifest.encode("utf-8"))
        for path in sorted(ADDON.rglob("*.py")):
            if "__pycache__" not in path.parts:
                _write(z, path.relative_to(ADDON).as_posix(), path.read_bytes())
        for wheel in wheels:
            _write(z, f"wheels/{wheel.name}", wheel.read_bytes(), zipfile.ZIP_STORED)
    return target


def with_wheels(manifest: str, wheels: list[Path]) -> str:
    """The manifest with its ``wheels`` list, placed where the marker line stands (a key after
    ``[permissions]`` would belong to that table)."""
    if WHEELS_MARKER not in manifest:
        raise ValueError(f"blender_manifest.toml lacks the line {WHEELS_MARKER!r}")
    listing = "wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]"
    return manifest.replace(WHEELS_MARKER, listing, 1)


def slim_wheel(out: Path) -> Path:
    """A pure-Python wheel with sfumato's client side only. Written by hand (a wheel is a zip
    with a RECORD) because setuptools would take the whole package, server and engine too."""
    host = ("__init__.py", "client.py", "hostoffer.py", "hostsession.py", "hostlink.py",
            "hostmultiview.py", "hostlive.py")  # fmt: skip
    host += ("hostserver.py", "hostlaunch.py")  # "Start a local server" (issue 15.4)
    host += ("clientrefs.py", "shmem.py")  # the client's inputs by reference (issue 12)
    host += ("hostdirection.py",)  # references and regions (issue 16)
    files = [SFUMATO / n for n in host]
    files.append(SFUMATO / "py.typed")
    files += sorted((SFUMATO / "protocol").glob("*.py"))
    dist = f"sfumato-{__version__}.dist-info"
    contents = {f"sfumato/{p.relative_to(SFUMATO).as_posix()}": p.read_bytes() for p in files}
    contents[f"{dist}/METADATA"] = (
        "Metadata-Version: 2.1\nName: sfumato\n"
        f"Version: {__version__}\n"
        "Summary: Sfumato's protocol, client and host session (what a host app imports)\n"
        "License: Apache-2.0\nRequires-Python: >=3.10\n"
        "Requires-Dist: msgpack>=1.0\nRequires-Dist: websockets>=13\n"
    ).encode()
    contents[f"{dist}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: sfumato-package\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in contents.items()]
    contents[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"sfumato-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in contents.items():
            _write(z, name, data)
    return target


def wheel_cache() -> Path:
    """Where downloaded wheels are kept, so later builds (and the tests) work offline."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sfumato"
    return Path(os.environ.get("SFUMATO_WHEEL_CACHE") or default / "wheels")


def download_wheels(cache: Path) -> list[Path]:
    """msgpack and websockets as binary wheels for each platform in PLATFORMS and each Python
    in PYTHONS: from the cache when it has them, else from the package index. One wheel per
    package, platform and Python: Blender installs every listed wheel that fits, so a universal
    wheel beside a binary one would install the package twice."""
    cache.mkdir(parents=True, exist_ok=True)
    found: set[Path] = set()
    for python in PYTHONS:
        for tags in PLATFORMS.values():
            found |= _wheels_for(cache, python, tags)
    return sorted(found, key=lambda p: p.name)


def _wheels_for(cache: Path, python: str, tags: tuple[str, ...]) -> set[Path]:
    """The wheels of DEPENDENCIES for one Python and platform, fetched into ``cache`` first
    when it lacks one (pip is only started then: it costs a second or two per call)."""
    try:
        return {_match(cache, dep, python, tags) for dep in DEPENDENCIES}
    except LookupError:
        pass
    abi = "cp" + python.replace(".", "")
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    base += ["--python-version", python, "--implementation", "cp", "--abi", abi]
    base += [arg for tag in tags for arg in ("--platform", tag)]
    base += ["--dest", str(cache), "--no-deps", *DEPENDENCIES]
    offline = subprocess.run(
        [*base, "--no-index", "--find-links", str(cache)], capture_output=True, text=True
    )
    if offline.returncode != 0:
        online = subprocess.run(base, capture_output=True, text=True)
        if online.returncode != 0:
            raise RuntimeError(
                f"could not download {', '.join(DEPENDENCIES)} for Python {python} on "
                f"{tags[0]}: {online.stderr.strip()[-800:]}\n(the wheels are cached in {cache} "
                "once a build has reached the package index)"
            )
    try:
        return {_match(cache, dep, python, tags) for dep in DEPENDENCIES}
    except LookupError as exc:
        raise RuntimeError(str(exc)) from None


def _match(cache: Path, requirement: str, python: str, tags: tuple[str, ...]) -> Path:
    """The cached binary wheel of ``requirement`` for one Python and platform."""
    name, version = requirement.split("==")
    abi = "cp" + python.replace(".", "")
    for wheel in sorted(cache.glob(f"{name}-{version}-{abi}-{abi}-*.whl")):
        platforms = wheel.stem.split("-")[-1].split(".")
        if set(platforms) & set(tags):
            return wheel
        arch = "arm64" if tags[0].endswith("arm64") else "x86_64"
        if tags[0].startswith("macosx") and any(
            p.startswith("macosx") and p.endswith(arch) for p in platforms
        ):
            return wheel  # pip took an older macOS tag of the same architecture
    raise LookupError(
        f"no {abi} binary wheel of {requirement} for {tags[0]} in {cache}; "
        "Blender would install a universal one beside it"
    )


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write(
    z: zipfile.ZipFile, name: str, data: bytes, compression: int = zipfile.ZIP_DEFLATED
) -> None:
    info = zipfile.ZipInfo(name, EPOCH)
    info.external_attr = 0o644 << 16
    info.compress_type = compression
    z.writestr(info, data)
