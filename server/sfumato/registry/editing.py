"""Writing to a registry file: a new entry appended, an entry approved.

``sfumato train-lora`` adds the LoRA it made (``approved = false``) and ``sfumato approve``
flips that one line; everything else in the file — comments, order, other entries — stays as
the studio wrote it, so the edit is plain text on the TOML, not a re-serialisation (the
standard library reads TOML but does not write it). Every edit is parsed back through
:meth:`Registry.parse` before it replaces the file, and the file is replaced atomically
(written beside it, fsync'd, renamed), so a crash leaves the old registry or the new one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .rules import NAME, ModelEntry, Registry, RegistryError

# A new registry file offers the built-in models too, so `--base tiny-sd` keeps working.
NEW_FILE = (
    "# Sfumato model registry (docs/studio.md). Serve it with: sfumato serve --registry <this>\n"
    "include_builtin = true\n"
)


def toml_value(value: str | bool | int | float) -> str:
    """A TOML literal for ``value``; strings as basic strings (JSON's escapes are TOML's,
    except DEL, which TOML also wants escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def add_entry(path: Path, name: str, fields: dict[str, str | bool]) -> ModelEntry:
    """Append ``[models."name"]`` with ``fields`` to the registry at ``path`` (created, with the
    built-in models included, when absent) and return the entry as the server will read it.

    Raises RegistryError for a name already there (nothing is overwritten: pick another name
    or remove the old entry) or fields the registry would refuse."""
    path = Path(path)
    _check_name(name, path)
    text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE
    before = Registry.parse(text, origin=str(path), base_dir=path.parent, builtin=Registry.load())
    if name in before and _section(text, name) is not None:
        raise RegistryError(
            f"{path} already has an entry [models.{name}]; choose another --name, or remove "
            "that entry first"
        )
    if name in before:
        raise RegistryError(
            f"{name!r} is a built-in model name; choose another --name for the trained LoRA"
        )
    block = f'\n[models."{name}"]\n' + "".join(
        f"{key} = {toml_value(value)}\n" for key, value in fields.items()
    )
    new = text + ("" if text.endswith("\n") else "\n") + block
    after = Registry.parse(new, origin=str(path), base_dir=path.parent, builtin=Registry.load())
    _replace(path, new)
    return after.get(name)


def approve(path: Path, name: str) -> tuple[ModelEntry, bool]:
    """Set ``approved = true`` on the entry ``name`` in the file at ``path``; returns the entry
    and whether it changed (False: it was approved already). Raises RegistryError naming the
    fix for a missing file or an entry that is not in this file."""
    path = Path(path)
    _check_name(name, path)
    if not path.is_file():
        raise RegistryError(
            f"there is no registry file {path}; give the registry that has the entry "
            "with --registry"
        )
    text = path.read_text(encoding="utf-8")
    registry = Registry.parse(text, origin=str(path), base_dir=path.parent, builtin=Registry.load())
    span = _section(text, name)
    if span is None:
        where = "is a built-in entry" if name in registry else "is not in this file"
        raise RegistryError(
            f"{name!r} {where} ({path}); approve an entry of this file: "
            + (", ".join(n for n in registry.names() if _section(text, n) is not None) or "none")
        )
    if registry.get(name).approved:
        return registry.get(name), False
    lines = text.splitlines(keepends=True)
    start, end = span
    for n in range(start + 1, end):
        if re.match(r"\s*approved\s*=", lines[n]):
            lines[n] = "approved = true\n"
            break
    else:  # pragma: no cover - an unapproved entry has its approved line
        lines.insert(start + 1, "approved = true\n")
    new = "".join(lines)
    after = Registry.parse(new, origin=str(path), base_dir=path.parent, builtin=Registry.load())
    if not after.get(name).approved:  # pragma: no cover - the line edit is what sets it
        raise RegistryError(f"{path}: could not approve {name!r}; edit approved = true by hand")
    _replace(path, new)
    return after.get(name), True


def _check_name(name: str, path: Path) -> None:
    if not NAME.match(name):
        raise RegistryError(
            f"{name!r} cannot be a registry name ({path}); use 1–64 characters of A–Z a–z 0–9 _ . -"
        )


def _section(text: str, name: str) -> tuple[int, int] | None:
    """The line range of ``[models.<name>]`` (header, next header) in ``text``, or None."""
    quoted = re.escape(name)
    header = re.compile(
        rf"""^\s*\[\s*models\s*\.\s*(?:"{quoted}"|'{quoted}'|{quoted})\s*\]\s*(?:#.*)?$"""
    )
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if header.match(line):
            end = next(
                (m for m in range(n + 1, len(lines)) if lines[m].lstrip().startswith("[")),
                len(lines),
            )
            return n, end
    return None


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
