"""The model registry: which models this server may use, by name, and where their weights live.

``rules`` reads and checks a registry (TOML → :class:`ModelEntry`, lookups, approval);
``builtin`` is the data every server knows without a file (the tiny families and the public
models they stand in for). Never imports torch: the CLI and the service list models without
loading any. Import from here (``from sfumato.registry import Registry``).
"""

from .rules import (
    BUILTIN_TOML,
    CONTROLS,
    FAMILIES,
    KINDS,
    NAME,
    SCHEMES,
    TINY_SOURCES,
    LoraMismatch,
    ModelEntry,
    NoControlNet,
    Registry,
    RegistryError,
    UnknownModel,
)

__all__ = [
    "BUILTIN_TOML",
    "CONTROLS",
    "FAMILIES",
    "KINDS",
    "NAME",
    "SCHEMES",
    "TINY_SOURCES",
    "LoraMismatch",
    "ModelEntry",
    "NoControlNet",
    "Registry",
    "RegistryError",
    "UnknownModel",
]  # fmt: skip
