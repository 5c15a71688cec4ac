"""``sfumato package krita``: the zip that Krita's *Tools ▸ Scripts ▸ Import Python Plugin
from File* accepts.

Krita has no pip, and its Python differs per platform (Debian's Krita 5.1 embeds 3.11, the
Windows and macOS builds of 5.2 embed 3.10), so everything the plugin imports besides Krita and
PyQt5 travels inside the zip as **pure Python** that runs on 3.10+: sfumato's protocol and
client copied as they are, and the ``.py`` files of msgpack (which falls back to its pure-Python
implementation without its C extension) and websockets (which runs without its speedups
module), taken from their source distributions. The zip's root holds ``sfumato.desktop`` and
``sfumato_krita/``, with an entry for every folder (Krita's importer finds the package by its
folder entry); the vendored code goes to ``sfumato_krita/_vendor/``.

The vendored packages are **isolated** (issue 10, item 2): every absolute import of
``sfumato``, ``msgpack`` or ``websockets`` in the shipped code — the plugin's and the vendored
packages' own — is rewritten to ``sfumato_krita._vendor.<name>``, and nothing is put on
``sys.path``. Another plugin that vendors its own websockets or msgpack (krita-ai-diffusion
does) gets its own from ``sys.modules``, and we get ours, whichever loads first.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from . import plugin_source

PLUGIN = plugin_source("krita_plugin")  # the checkout's, or the installed wheel's copy
SFUMATO = Path(__file__).resolve().parents[1]
EPOCH = (2024, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same zip bytes


@dataclass(frozen=True)
class Sdist:
    """A pinned source distribution and where its package and licence sit inside it."""

    name: str
    version: str
    sha256: str
    package: str  # folder of the importable package inside the sdist
    license: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tar.gz"


# Pinned to releases whose Requires-Python admits 3.10 (websockets 17 needs 3.11), with the
# hashes of their sdists, so a build never vendors code nobody reviewed.
VENDORED = (
    Sdist(
        "msgpack", "1.2.4", "475c44e12f2a5de766a8448783f149c9b33f3f49b88953c6cd739a77d93c732c",
        "msgpack", "COPYING",
    ),
    Sdist(
        "websockets", "16.0", "5f6261a5e56e8d5c42a4497b364ea24d94d9563e8fbd44e78ac40879c60179b5",
        "src/websockets", "LICENSE",
    ),
)  # fmt: skip


def build_krita(out: Path) -> Path:
    """Build ``sfumato-krita-<version>.zip`` into ``out`` and return its path."""
    desktop = PLUGIN / "sfumato.desktop"
    if not desktop.is_file():
        raise FileNotFoundError(
            f"{desktop} is missing: package the Krita plugin from a source checkout of Sfumato,"
            " or reinstall the sfumato wheel (it carries the plugin)"
        )
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {"sfumato.desktop": desktop.read_bytes()}
    for path in sorted((PLUGIN / "sfumato_krita").rglob("*")):
        rel = path.relative_to(PLUGIN)
        if path.is_file() and _shipped(rel) and not {"vendor", "_vendor"} & set(rel.parts):
            files[rel.as_posix()] = path.read_bytes()
    files.update(vendored_files(sdist_cache()))
    files = {n: isolate(data) if n.endswith(".py") else data for n, data in files.items()}
    target = out / f"sfumato-krita-{__version__}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted([*files, *directories(files)]):
            if name.endswith("/"):
                info = zipfile.ZipInfo(name, EPOCH)
                info.external_attr = (0o40755 << 16) | 0x10  # a directory, for unix and DOS
                z.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
    return target


def directories(files: dict[str, bytes]) -> set[str]:
    """An entry ``dir/`` for every folder above a file, as ``zip -r`` writes them.

    Krita's importer needs them: ``PluginImporter.get_source_module`` (Krita 5.1/5.2,
    plugins/python/plugin_importer) looks for the entry ``<X-KDE-Library>/`` and an
    ``__init__.py`` beside it; without the entry it answers "No plugins found in archive"."""
    out = set()
    for name in files:
        parts = name.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    return out


def vendored_files(cache: Path) -> dict[str, bytes]:
    """``sfumato_krita/_vendor/…`` → bytes: sfumato's client side and the pure-Python deps."""
    vendor = VENDOR
    files = {
        f"{vendor}/__init__.py": b'"""Sfumato\'s private copies of its dependencies, imported only by '
        b'these names (sfumato package krita rewrote the imports)."""\n',
        f"{vendor}/sfumato/__init__.py": (SFUMATO / "__init__.py").read_bytes(),
    }
    host = ("client.py", "hostoffer.py", "hostsession.py", "hostlink.py", "hostlive.py")
    host += ("hostserver.py", "hostlaunch.py")  # "Start a local server" (issue 15.4)
    host += ("clientrefs.py", "shmem.py")  # the client's inputs by reference (issue 12)
    host += ("hostdirection.py",)  # references and regions (issue 16)
    for name in host:
        files[f"{vendor}/sfumato/{name}"] = (SFUMATO / name).read_bytes()
    for path in sorted((SFUMATO / "protocol").glob("*.py")):
        files[f"{vendor}/sfumato/protocol/{path.name}"] = path.read_bytes()
    notes = [f"sfumato {__version__} (protocol, client and host session, unchanged)"]
    for sdist in VENDORED:
        files.update(_sdist_python(fetch_sdist(sdist, cache), sdist, vendor))
        notes.append(f"{sdist.name} {sdist.version} (pure Python, from its sdist)")
    files[f"{vendor}/VERSIONS.txt"] = ("\n".join(notes) + "\n").encode()
    return files


VENDOR = "sfumato_krita/_vendor"
PRIVATE = VENDOR.replace("/", ".")
ISOLATED = ("sfumato", "msgpack", "websockets")
_IMPORT = re.compile(
    rb"^(?P<indent>[ \t]*)(?P<kw>from|import)[ \t]+(?P<name>"
    + b"|".join(n.encode() for n in ISOLATED)
    + rb")(?P<rest>(?:\.[\w.]+)?)(?P<tail>[ \t,].*)?$",
    re.M,
)


def isolate(source: bytes) -> bytes:
    """``source`` with every absolute import of an isolated package made private:
    ``from websockets.sync.client import connect`` → ``from sfumato_krita._vendor.websockets
    .sync.client import connect``, ``import msgpack`` → ``from sfumato_krita._vendor import
    msgpack``. Forms it cannot rewrite faithfully (``import websockets.sync``) stop the build."""

    def rewrite(m: re.Match[bytes]) -> bytes:
        indent, kw, name, rest = m["indent"], m["kw"], m["name"], m["rest"]
        tail = m["tail"] or b""
        if kw == b"from":
            return indent + b"from " + PRIVATE.encode() + b"." + name + rest + tail
        if rest or (tail.strip() and not tail.strip().startswith((b"as ", b"#"))):
            raise ValueError(f"cannot isolate {m[0].decode().strip()!r}: import it with from")
        return indent + b"from " + PRIVATE.encode() + b" import " + name + tail

    return _IMPORT.sub(rewrite, source)


def sdist_cache() -> Path:
    """Where the pinned sdists are kept, so later builds (and the tests) need no network."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sfumato"
    return Path(os.environ.get("SFUMATO_SDIST_CACHE") or default / "sdists")


def fetch_sdist(sdist: Sdist, cache: Path) -> Path:
    """The sdist from the cache if its hash matches, else downloaded with pip."""
    path = cache / sdist.filename
    if not _hash_ok(path, sdist.sha256):
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        cmd += ["--no-binary", ":all:", "--dest", str(cache), f"{sdist.name}=={sdist.version}"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(
                f"could not download {sdist.filename}: {run.stderr.strip()[-800:]}\n(put the "
                f"file into {cache} by hand to build offline)"
            )
    if not _hash_ok(path, sdist.sha256):
        raise RuntimeError(
            f"{path} does not have the pinned sha256 {sdist.sha256}; delete it and build again"
        )
    return path


def _sdist_python(path: Path, sdist: Sdist, vendor: str) -> dict[str, bytes]:
    """The package's ``.py`` files (no C sources, no stubs) and its licence."""
    root = f"{sdist.name}-{sdist.version}"
    prefix = f"{root}/{sdist.package}/"
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            name = member.name
            if name.startswith(prefix) and name.endswith(".py"):
                dest = f"{vendor}/{sdist.name}/{name[len(prefix) :]}"
            elif name == f"{root}/{sdist.license}":
                dest = f"{vendor}/LICENSES/{sdist.name}-{sdist.license}"
            else:
                continue
            data = tar.extractfile(member)
            assert data is not None
            out[dest] = data.read()
    if f"{vendor}/{sdist.name}/__init__.py" not in out:
        raise RuntimeError(f"{path} has no {prefix}__init__.py; is the pin right?")
    return out


def _shipped(rel: Path) -> bool:
    return "__pycache__" not in rel.parts and rel.suffix not in (".pyc", ".pyo")


def _hash_ok(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
