"""Issue 10 item 4: the plugin's Qt bindings are imported in one module (``qt.py``), so a Qt6
Krita is one change. Read from the sources (no Krita, no Qt needed): every other module takes
its Qt names from ``.qt``, and every name it takes is one ``qt.py`` exports."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "krita_plugin" / "sfumato_krita"
BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip", "shiboken6")


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``path``; relative ones as ``.name``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            out.append((module, [alias.name for alias in node.names]))
    return out


def test_only_qt_py_imports_the_qt_bindings() -> None:
    modules = sorted(PLUGIN.rglob("*.py"))
    assert len(modules) >= 9
    offenders = [
        (path.name, module)
        for path in modules
        if path.name != "qt.py"
        for module, _ in imports(path)
        if module.split(".")[0] in BINDINGS
    ]
    assert offenders == []
    qt = [module for module, _ in imports(PLUGIN / "qt.py")]
    assert qt and all(m.split(".")[0] == "PyQt5" for m in qt), qt


def test_every_qt_name_the_plugin_uses_is_exported_by_qt_py() -> None:
    tree = ast.parse((PLUGIN / "qt.py").read_text("utf-8"))
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = set(ast.literal_eval(node.value))
    imported = {n for module, names in imports(PLUGIN / "qt.py") for n in names}
    assert exported == imported | {"BINDING"}, exported ^ (imported | {"BINDING"})
    used = {
        (path.name, name)
        for path in PLUGIN.glob("*.py")
        for module, names in imports(path)
        if module == ".qt"
        for name in names
    }
    assert used, "no module takes Qt names from .qt"
    assert {name for _, name in used} <= exported, {u for u in used if u[1] not in exported}
