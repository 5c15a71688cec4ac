"""The model registry: which models this server may use, by name, and where their weights live.

Clients pick a model by registry name only, never by path (DESIGN.md, "Models"), so this is
the one place a name turns into a source. It reads TOML with the standard library and never
imports torch: the CLI (``sfumato models``) and the service list models without loading any.

A registry file looks like::

    default = "tiny-sd"
    include_builtin = true        # optional: also offer the built-in entries below
    [models.tiny-sd]
    kind = "base"                 # base | controlnet | lora | preview | ip_adapter | image_encoder
    family = "sd15"               # sd15 | sd21 | sdxl
    source = "tiny:sd15"          # tiny:<part> | hub:<repo id> | dir:<folder> | file:<x.safetensors>
    config = "sd15-inpaint/"      # file: only, optional: its diffusers config folder
    control = "depth"             # controlnet entries only: which ControlKind they read
    license = "Apache-2.0"
    approved = true
    description = "..."
    # ip_adapter / image_encoder entries of a hub or dir source: the file (adapter) or folder
    # (encoder) inside it, and the adapter's image encoder by registry name:
    # weight = "models/ip-adapter_sd15.safetensors"; encoder = "sd15-image-encoder"

Relative ``dir:`` and ``file:`` paths resolve against the folder of the TOML file, so a
studio can ship a registry next to its weights.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..protocol.conditioning import ControlKind
from ..protocol.errors import ErrorCode, SfumatoError
from ..protocol.events import ModelInfo
from .builtin import builtin_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("base", "controlnet", "lora", "preview", "ip_adapter", "image_encoder")
# sd21 (SD 2.x, e.g. SD-Turbo) is a base family only: it has no tiny parts, so the tiny ones
# (TINY_SOURCES, engine/tiny.py) are generated from TINY_FAMILIES, not from FAMILIES.
FAMILIES = ("sd15", "sd21", "sdxl")
TINY_FAMILIES = ("sd15", "sdxl")
SCHEMES = ("tiny", "hub", "dir", "file")
CONTROLS = tuple(kind.value for kind in ControlKind)
# Every tiny part the engine can build offline, with the (kind, family) it is: bases, one
# ControlNet per family and control kind, a style LoRA and a TAESD-shaped preview decoder.
TINY_SOURCES: dict[str, tuple[str, str]] = {
    **{f"tiny:{f}": ("base", f) for f in TINY_FAMILIES},
    **{f"tiny:{f}-controlnet-{c}": ("controlnet", f) for f in TINY_FAMILIES for c in CONTROLS},
    **{f"tiny:{f}-lora-style": ("lora", f) for f in TINY_FAMILIES},
    **{f"tiny:{f}-preview": ("preview", f) for f in TINY_FAMILIES},
    **{f"tiny:{f}-ip-adapter": ("ip_adapter", f) for f in TINY_FAMILIES},
    **{f"tiny:{f}-image-encoder": ("image_encoder", f) for f in TINY_FAMILIES},
}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FIELDS = ("kind", "family", "source", "license", "approved", "description", "control", "sha256",
           "dataset_sha256", "base_model", "base_sha256", "config", "weight", "encoder",
           "turbo")  # fmt: skip
# How a few-step model must be sampled (engine/turbo.py): adversarial (SD-/SDXL-Turbo, a base
# model) or lcm (an LCM LoRA on its family's base).
TURBO = {"adversarial": "base", "lcm": "lora"}
# Fields only a trained LoRA has (sfumato train-lora): what it learnt from, and on which base.
_TRAINED = ("dataset_sha256", "base_model", "base_sha256")
_TOP_LEVEL = ("default", "include_builtin", "models")

# The registry every server knows without a file (builtin.py).
BUILTIN_TOML = builtin_toml(TINY_FAMILIES, CONTROLS)


class RegistryError(SfumatoError, ValueError):
    """A registry file that cannot be used; the message names the entry, the field and the fix."""


class UnknownModel(SfumatoError, LookupError):
    """A model name that the registry does not hold."""

    code = ErrorCode.UNKNOWN_MODEL
    field = "params.model"

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        listed = ", ".join(known) if known else "(none)"
        super().__init__(
            f"unknown model {name!r}; this server knows: {listed}. "
            "Pick one of those (see `sfumato models`)"
        )
        self.name = name
        self.known = known


class NoControlNet(UnknownModel):
    """No ControlNet registered for a family and control kind (the job names the kind)."""

    field = "inputs.controls"

    def __init__(self, family: str, control: str, known: tuple[str, ...]) -> None:
        SfumatoError.__init__(
            self,
            f"no {control} ControlNet is registered for the {family} family; this server has "
            f"{', '.join(known) if known else 'none'} for {family}. Add a [models.<name>] entry "
            f'with kind = "controlnet", family = "{family}", control = "{control}" to the registry',
        )
        self.name = control
        self.known = known


class LoraMismatch(SfumatoError, ValueError):
    """A LoRA name that is not a LoRA, or one of another family: its weights would not fit
    the model's UNet."""

    code = ErrorCode.UNSUPPORTED
    field = "params.loras"


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
    control: str = ""  # controlnet entries: the ControlKind value they read
    sha256: str = ""  # of the approved weights (engine/hashing.py); "" = not pinned
    # A LoRA made by `sfumato train-lora`: its dataset's manifest hash (training/dataset.py),
    # and the base model it was trained on, by name and weights hash. "" for any other entry.
    dataset_sha256: str = ""
    base_model: str = ""
    base_sha256: str = ""
    # A file: base model's diffusers configuration folder (absolute); "" = the family's
    # configuration shipped with sfumato (engine/singlefile.py): SD1.5 or SDXL base.
    config: str = ""
    # ip_adapter and image_encoder entries: the file or folder inside the source ("" = the
    # source itself); ip_adapter entries: their image_encoder entry's name.
    weight: str = ""
    encoder: str = ""
    turbo: str = ""  # "", or a TURBO kind: the scheduler, guidance and steps it needs

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
            control=self.control,
            sha256=self.sha256,
            turbo=self.turbo,
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

    def controlnet(self, family: str, control: str, *, tiny: bool = False) -> ModelEntry:
        """The ControlNet for ``family`` that reads ``control`` maps: approved entries first,
        then by name. A tiny base gets a tiny ControlNet and a real base a real one, because
        both families share a name (sd15) and random weights would spoil a real image.
        Raises :class:`NoControlNet` naming what is registered instead."""
        same = [e for e in self.entries.values() if e.kind == "controlnet" and e.family == family]
        fits = [e for e in same if e.control == control and e.tiny == tiny]
        if not fits:
            known = sorted({e.control for e in same if e.tiny == tiny})
            raise NoControlNet(family, control, tuple(known))
        return sorted(fits, key=lambda e: (not e.approved, e.name))[0]

    def lora(self, name: str, family: str) -> ModelEntry:
        """The LoRA called ``name``, checked to be a LoRA of ``family``.

        Raises UnknownModel for a name the registry lacks and LoraMismatch for an entry that
        is not a LoRA or belongs to another family (its weights would not fit the UNet)."""
        entry = self.get(name)
        if entry.kind != "lora":
            raise LoraMismatch(
                f"params.loras: {name!r} is a {entry.kind}, not a LoRA; pick one of "
                f"{', '.join(self.of_kind('lora', family)) or '(none)'}"
            )
        if entry.family != family:
            raise LoraMismatch(
                f"params.loras: {name!r} is a LoRA for {entry.family}, but the model is "
                f"{family}; pick one of {', '.join(self.of_kind('lora', family)) or '(none)'}"
            )
        return entry

    def preview(self, family: str, *, tiny: bool = False) -> ModelEntry | None:
        """The preview decoder for ``family`` (tiny for a tiny base), or None: a job never
        fails for the want of a preview decoder."""
        fits = [
            e
            for e in self.entries.values()
            if e.kind == "preview" and e.family == family and e.tiny == tiny
        ]
        return sorted(fits, key=lambda e: (not e.approved, e.name))[0] if fits else None

    def of_kind(self, kind: str, family: str | None = None) -> tuple[str, ...]:
        """Names of the entries of ``kind`` (and ``family``), for pickers and error messages."""
        return tuple(
            name
            for name, e in self.entries.items()
            if e.kind == kind and (family is None or e.family == family)
        )

    def infos(self) -> tuple[ModelInfo, ...]:
        """The entries as clients see them (no sources: those may be server paths), each
        marked ``available`` when its weights are on this disk now (registry/weights.py)."""
        from .weights import present

        return tuple(
            replace(entry.info(), available=present(entry)) for entry in self.entries.values()
        )

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
    for key in ("kind", "family", "source", "license", "description", "control", "weight",
                "encoder", "turbo"):  # fmt: skip
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
    control = table.get("control", "")
    if kind == "controlnet" and control not in CONTROLS:
        raise RegistryError(
            f"{where}: a controlnet entry needs control = one of {', '.join(CONTROLS)}"
            + (f"; got {control!r}" if control else "")
        )
    if kind != "controlnet" and control:
        raise RegistryError(f'{where}: control is only for kind = "controlnet" entries')
    sha256 = table.get("sha256", "")
    for key in ("sha256", "dataset_sha256", "base_sha256"):
        value = table.get(key, "")
        if not (isinstance(value, str) and re.fullmatch(r"([0-9a-fA-F]{64})?", value)):
            raise RegistryError(f"{where}: {key} must be 64 hexadecimal digits, got {value!r}")
    base_model = table.get("base_model", "")
    if not (isinstance(base_model, str) and (base_model == "" or NAME.match(base_model))):
        raise RegistryError(f"{where}: base_model must be a registry name, got {base_model!r}")
    if kind != "lora" and any(key in table for key in _TRAINED):
        raise RegistryError(
            f'{where}: {", ".join(k for k in _TRAINED if k in table)} only for kind = "lora" '
            "entries (a LoRA made by sfumato train-lora); remove it"
        )
    for key in ("weight", "encoder"):
        if key in table and kind not in ("ip_adapter", "image_encoder"):
            raise RegistryError(
                f'{where}: {key} is only for kind = "ip_adapter" or "image_encoder" entries'
            )
    if kind == "ip_adapter" and not NAME.match(table.get("encoder", "")):
        raise RegistryError(
            f'{where}: an ip_adapter entry needs encoder = "<the registry name of its '
            'image_encoder entry>"'
        )
    turbo = table.get("turbo", "")
    if turbo and TURBO.get(turbo) != kind:
        raise RegistryError(
            f"{where}: turbo must be one of "
            + ", ".join(f'"{t}" (kind = "{k}")' for t, k in TURBO.items())
            + f", got {turbo!r} on a {kind} entry"
        )
    source = _source(source, kind, family, where, base_dir)
    config = _config(table.get("config", ""), source, where, base_dir)
    return ModelEntry(
        name=name,
        kind=kind,
        family=family,
        source=source,
        license=table.get("license", ""),
        approved=approved,
        description=table.get("description", ""),
        control=control,
        sha256=sha256.lower(),
        dataset_sha256=table.get("dataset_sha256", "").lower(),
        base_model=base_model,
        base_sha256=table.get("base_sha256", "").lower(),
        config=config,
        weight=table.get("weight", ""),
        encoder=table.get("encoder", ""),
        turbo=turbo,
    )


def _config(config: Any, source: str, where: str, base_dir: Path) -> str:
    """``config = "<folder>"``: a diffusers config folder for a single-file checkpoint whose
    architecture is not its family's base (an inpainting or v-prediction variant, say)."""
    if not config:
        return ""
    if not isinstance(config, str):
        raise RegistryError(f"{where}: config must be a folder path string, got {config!r}")
    if not source.startswith("file:"):
        raise RegistryError(
            f'{where}: config is only for source = "file:…" (a single-file checkpoint); remove it'
        )
    path = Path(config).expanduser()
    return str((path if path.is_absolute() else base_dir / path).resolve())


def _source(source: str, kind: str, family: str, where: str, base_dir: Path) -> str:
    scheme, sep, location = source.partition(":")
    if not sep or scheme not in SCHEMES or not location:
        raise RegistryError(
            f"{where}: source {source!r} must be one of tiny:sd15, tiny:sdxl, hub:<repo id>, "
            "dir:<folder> or file:<checkpoint.safetensors>"
        )
    if scheme == "tiny":
        if source not in TINY_SOURCES:
            tiny = ", ".join(s for s, (k, _f) in TINY_SOURCES.items() if k == kind)
            raise RegistryError(
                f"{where}: source {source!r}: the tiny {kind} sources are {tiny or '(none)'}"
            )
        tiny_kind, tiny_family = TINY_SOURCES[source]
        if tiny_family != family:
            raise RegistryError(
                f"{where}: source {source!r} builds an {tiny_family} model but family is "
                f'{family!r}; set family = "{tiny_family}"'
            )
        if tiny_kind != kind:
            raise RegistryError(
                f'{where}: source {source!r} builds a {tiny_kind}; set kind = "{tiny_kind}"'
            )
    if scheme in ("dir", "file"):
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        return f"{scheme}:{path.resolve()}"
    return source
