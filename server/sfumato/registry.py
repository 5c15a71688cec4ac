"""The model registry: which models this server may use, by name, and where their weights live.

Clients pick a model by registry name only, never by path (DESIGN.md, "Models"), so this is
the one place a name turns into a source. It reads TOML with the standard library and never
imports torch: the CLI (``sfumato models``) and the service list models without loading any.

A registry file looks like::

    default = "tiny-sd"
    include_builtin = true        # optional: also offer the built-in entries below
    [models.tiny-sd]
    kind = "base"                 # base | controlnet | lora | preview
    family = "sd15"               # sd15 | sdxl
    source = "tiny:sd15"          # tiny:sd15 | tiny:sdxl | hub:<repo id> | dir:<folder> | file:<x.safetensors>
    license = "Apache-2.0"
    approved = true
    description = "..."

Relative ``dir:`` and ``file:`` paths resolve against the folder of the TOML file, so a
studio can ship a registry next to its weights.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .protocol.errors import ErrorCode, SfumatoError
from .protocol.events import ModelInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("base", "controlnet", "lora", "preview")
FAMILIES = ("sd15", "sdxl")
SCHEMES = ("tiny", "hub", "dir", "file")
TINY_SOURCES = ("tiny:sd15", "tiny:sdxl")
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FIELDS = ("kind", "family", "source", "license", "approved", "description")
_TOP_LEVEL = ("default", "include_builtin", "models")

# The registry every server knows without a file: the two tiny families (random weights, built
# locally, run offline) and the two public base models they stand in for.
BUILTIN_TOML = """
default = "tiny-sd"

[models.tiny-sd]
kind = "base"
family = "sd15"
source = "tiny:sd15"
license = "Apache-2.0"
approved = true
description = "Tiny SD1.5-shaped model with random weights, built locally: images are noise. For tests and demos."

[models.tiny-sdxl]
kind = "base"
family = "sdxl"
source = "tiny:sdxl"
license = "Apache-2.0"
approved = true
description = "Tiny SDXL-shaped model with random weights, built locally: images are noise. For tests and demos."

[models.sd15]
kind = "base"
family = "sd15"
source = "hub:stable-diffusion-v1-5/stable-diffusion-v1-5"
license = "creativeml-openrail-m"
approved = true
description = "Stable Diffusion 1.5, 512 px."

[models.sdxl]
kind = "base"
family = "sdxl"
source = "hub:stabilityai/stable-diffusion-xl-base-1.0"
license = "openrail++"
approved = true
description = "Stable Diffusion XL base 1.0, 1024 px."
"""


class RegistryError(SfumatoError, ValueError):
    """A registry file that cannot be used; the message names the entry, the field and the fix."""


class UnknownModel(SfumatoError, LookupError):
    """A model name that the registry does not hold."""

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN_MODEL

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        listed = ", ".join(known) if known else "(none)"
        super().__init__(
            f"unknown model {name!r}; this server knows: {listed}. "
            "Pick one of those (see `sfumato models`)"
        )
        self.name = name
        self.known = known


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry. ``source`` is ``scheme:location``; dir/file locations are absolute."""

    name: str
    kind: str
    family: str
    source: str
    license: str = ""
    approved: bool = True
    description: str = ""

    @property
    def tiny(self) -> bool:
        """Random weights built locally: the images are noise, and the server says so."""
        return self.source.startswith("tiny:")

    @property
    def scheme(self) -> str:
        return self.source.partition(":")[0]

    @property
    def location(self) -> str:
        """The part after the scheme: a family, a hub repo id, or an absolute path."""
        return self.source.partition(":")[2]

    def info(self) -> ModelInfo:
        """What a client may see: everything but the source, which may be a server path."""
        return ModelInfo(
            name=self.name,
            family=self.family,
            kind=self.kind,
            license=self.license,
            approved=self.approved,
            tiny=self.tiny,
            description=self.description,
        )


@dataclass(frozen=True)
class Registry:
    """An immutable, validated set of entries and the default model's name."""

    entries: Mapping[str, ModelEntry]
    default: str
    path: Path | None = None  # the file it came from; None for the built-in registry

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        """Read ``path`` (None: the built-in registry). Raises :class:`RegistryError`."""
        builtin = cls.parse(BUILTIN_TOML, origin="the built-in registry")
        if path is None:
            return builtin
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegistryError(
                f"cannot read the model registry {path}: {exc.strerror or exc}; "
                "check the path given to --models"
            ) from exc
        return cls.parse(text, origin=str(path), base_dir=path.parent, builtin=builtin, path=path)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        origin: str = "registry",
        base_dir: Path | None = None,
        builtin: Registry | None = None,
        path: Path | None = None,
    ) -> Registry:
        """Validate TOML text. ``builtin`` is merged in when the text says ``include_builtin``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{origin} is not valid TOML: {exc}; fix the syntax") from exc
        for key in data:
            if key not in _TOP_LEVEL:
                raise RegistryError(
                    f"{origin}: unknown top-level key {key!r}; allowed: {', '.join(_TOP_LEVEL)}"
                    " (entries go under [models.<name>])"
                )
        include = data.get("include_builtin", False)
        if not isinstance(include, bool):
            raise RegistryError(f"{origin}: include_builtin must be true or false")
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise RegistryError(f"{origin}: 'models' must be a table of [models.<name>] entries")
        entries: dict[str, ModelEntry] = {}
        if include and builtin is not None:
            entries.update(builtin.entries)
        for name, table in models.items():
            entries[name] = _entry(name, table, origin, base_dir or Path.cwd())
        if not entries:
            raise RegistryError(
                f"{origin} names no models; add a [models.<name>] entry "
                "or set include_builtin = true"
            )
        default = data.get("default")
        if default is None and include and builtin is not None:
            default = builtin.default
        if default is None:
            raise RegistryError(
                f'{origin}: no default model; add default = "<name>" naming a base model'
            )
        if not isinstance(default, str) or default not in entries:
            raise RegistryError(
                f"{origin}: default = {default!r} is not an entry; use one of "
                + ", ".join(sorted(entries))
            )
        if entries[default].kind != "base":
            raise RegistryError(
                f"{origin}: default = {default!r} is a {entries[default].kind}; "
                "the default must be a base model"
            )
        return cls(entries=dict(sorted(entries.items())), default=default, path=path)

    def get(self, name: str | None) -> ModelEntry:
        """The entry called ``name`` (None: the default). Raises :class:`UnknownModel`."""
        key = self.default if name is None else name
        try:
            return self.entries[key]
        except KeyError:
            raise UnknownModel(key, self.names()) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def infos(self) -> tuple[ModelInfo, ...]:
        """The entries as clients see them (no sources: those may be server paths)."""
        return tuple(entry.info() for entry in self.entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self.entries


def _entry(name: str, table: Any, origin: str, base_dir: Path) -> ModelEntry:
    where = f"{origin}, [models.{name}]"
    if not NAME.match(name):
        raise RegistryError(
            f"{where}: the name must be 1–64 characters of A–Z a–z 0–9 _ . - "
            "(clients send it as params.model)"
        )
    if not isinstance(table, dict):
        raise RegistryError(f"{where}: must be a table with kind, family and source")
    for key in table:
        if key not in _FIELDS:
            raise RegistryError(
                f"{where}: unknown field {key!r}; allowed fields: {', '.join(_FIELDS)}"
            )
    for key in ("kind", "family", "source"):
        if key not in table:
            raise RegistryError(f'{where}: missing field {key!r}; add {key} = "..."')
    for key in ("kind", "family", "source", "license", "description"):
        if key in table and not isinstance(table[key], str):
            raise RegistryError(f"{where}: {key} must be a string, got {table[key]!r}")
    kind, family, source = table["kind"], table["family"], table["source"]
    if kind not in KINDS:
        raise RegistryError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if family not in FAMILIES:
        raise RegistryError(f"{where}: family {family!r} is not one of {', '.join(FAMILIES)}")
    approved = table.get("approved", True)
    if not isinstance(approved, bool):
        raise RegistryError(f"{where}: approved must be true or false, got {approved!r}")
    source = _source(source, family, where, base_dir)
    return ModelEntry(
        name=name,
        kind=kind,
        family=family,
        source=source,
        license=table.get("license", ""),
        approved=approved,
        description=table.get("description", ""),
    )


def _source(source: str, family: str, where: str, base_dir: Path) -> str:
    scheme, sep, location = source.partition(":")
    if not sep or scheme not in SCHEMES or not location:
        raise RegistryError(
            f"{where}: source {source!r} must be one of tiny:sd15, tiny:sdxl, hub:<repo id>, "
            "dir:<folder> or file:<checkpoint.safetensors>"
        )
    if scheme == "tiny":
        if source not in TINY_SOURCES:
            raise RegistryError(
                f"{where}: source {source!r}: the tiny families are {', '.join(TINY_SOURCES)}"
            )
        if location != family:
            raise RegistryError(
                f"{where}: source {source!r} builds an {location} model but family is "
                f'{family!r}; set family = "{location}"'
            )
    if scheme in ("dir", "file"):
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        return f"{scheme}:{path.resolve()}"
    return source
