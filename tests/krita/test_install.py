"""Issue 9 item 17: the zip from ``sfumato package krita`` installs through Krita's own
*Tools ▸ Scripts ▸ Import Python Plugin from File…*, as docs/krita.md says — the conftest's
``krita_env`` installs every Krita test's plugin that way, and these tests check what it saw."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from ..ci import missing
from .conftest import INSTALL, KritaEnv

# Krita's importer (plugins/python/plugin_importer), as Debian's Krita 5.1.5 ships it.
IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")


def test_the_zip_imports_through_krita_s_own_menu_action(krita_env: KritaEnv) -> None:
    report = krita_env.install
    assert report["ok"], report.get("error", report)
    titles = [dialog[0] for dialog in report["dialogs"]]
    assert "Error" not in titles, report["dialogs"]  # "Error during import: No plugins found…"
    assert titles[0] == "file", report["dialogs"]
    activate = [text for title, text in report["dialogs"] if title == "Activate Plugins?"]
    assert len(activate) == 1 and "<li>Sfumato</li>" in activate[0], report["dialogs"]
    assert report["enabled"] == "true"
    names = zipfile.ZipFile(krita_env.zip_path).namelist()
    files = [n for n in names if n.startswith("sfumato_krita/") and not n.endswith("/")]
    assert len(files) > 20  # the plugin and its vendored protocol, client, msgpack, websockets
    with zipfile.ZipFile(krita_env.zip_path) as z:
        for name in files:
            assert (krita_env.pykrita / name).read_bytes() == z.read(name), name
        desktop = z.read("sfumato.desktop")
    assert (krita_env.pykrita / "sfumato_krita.desktop").read_bytes() == desktop
    kritarc = (krita_env.root / "config" / "kritarc").read_text("utf-8")
    assert "enable_sfumato_krita=true" in kritarc  # Yes to "enable now" was saved


def load_importer() -> ModuleType:
    if not IMPORTER.is_file():
        missing(f"Krita's plugin importer {IMPORTER} is missing", INSTALL)
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", IMPORTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.i18n = str  # Krita provides i18n as a builtin; the importer calls it on errors
    return module


def test_the_importer_needs_the_folder_entries_the_zip_has(
    krita_env: KritaEnv, tmp_path: Path
) -> None:
    """Krita's importer finds a plugin by its folder entry (``sfumato_krita/``): the same
    files zipped without folder entries are refused — the failure item 17 reported."""
    importer = load_importer()
    with zipfile.ZipFile(krita_env.zip_path) as z:
        names = z.namelist()
        folders = {n for n in names if n.endswith("/")}
        parents = {n.rsplit("/", 1)[0] + "/" for n in names if "/" in n.rstrip("/")}
        assert parents <= folders, parents - folders  # every folder has its entry
        flat = tmp_path / "flat.zip"
        with zipfile.ZipFile(flat, "w") as out:
            for name in names:
                if not name.endswith("/"):
                    out.writestr(name, z.read(name))
    (tmp_path / "ok").mkdir()
    imported = importer.PluginImporter(str(krita_env.zip_path), str(tmp_path / "ok"), bool)
    assert [p["name"] for p in imported.import_all()] == ["sfumato_krita"]
    (tmp_path / "flat").mkdir()
    with pytest.raises(importer.NoPluginsFoundException):
        importer.PluginImporter(str(flat), str(tmp_path / "flat"), bool).import_all()
