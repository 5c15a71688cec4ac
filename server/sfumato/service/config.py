"""Server configuration: defaults, the TOML config file, and the safety rules for binding."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..protocol import Limits, SfumatoError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PORT = 8746


class ConfigError(SfumatoError, ValueError):
    """A setting that cannot work; the message names the setting and the fix."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sfumato"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sfumato"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    # Browser pages send an Origin header; none is allowed unless listed here (exact match).
    allowed_origins: tuple[str, ...] = ()
    results: Path = field(default_factory=lambda: default_data_dir() / "results")
    cache: Path = field(default_factory=default_cache_dir)
    registry: Path | None = None  # None: the built-in registry
    model: str | None = None  # default model; None: the registry's default
    device: str | None = None  # None: pick CUDA / MPS / CPU
    preload: bool = True  # load the default model in the background right after start
    png_compression: int = 0  # result store PNGs, 0–9: 0 writes 512² in 0.5 ms, 1+ in ~25 ms
    credentials: bool = True  # sign content credentials (C2PA) into every output
    signing_cert: Path | None = None  # PEM chain, leaf first; None: a local development identity
    signing_key: Path | None = None  # PEM PKCS#8 private key of the leaf
    limits: Limits = field(default_factory=Limits)

    def check(self) -> None:
        """Refuse unsafe or impossible settings before anything binds."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} must be from 0 to 65535 (0 picks a free one)")
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone on that network could "
                "drive this GPU server. Set --token (or $SFUMATO_TOKEN), or bind 127.0.0.1"
            )

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> ServerConfig:
        """Read ``[server]`` and ``[limits]`` tables; keyword overrides (from flags) win."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; check --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = set(data) - {"server", "limits"}
        if unknown:
            raise ConfigError(
                f"{path}: unknown table [{sorted(unknown)[0]}]; use [server] or [limits]"
            )
        server = dict(data.get("server", {}))
        known = {f.name for f in fields(cls)} - {"limits"}
        for key in server:
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown setting server.{key}; known: {', '.join(sorted(known))}"
                )
        for key in ("results", "cache", "registry", "signing_cert", "signing_key"):
            if key in server:
                server[key] = (path.parent / server[key]).resolve()
        if "allowed_origins" in server:
            server["allowed_origins"] = tuple(server["allowed_origins"])
        limits_data = data.get("limits", {})
        limit_names = {f.name for f in fields(Limits)}
        for key in limits_data:
            if key not in limit_names:
                raise ConfigError(
                    f"{path}: unknown limit limits.{key}; known: {', '.join(sorted(limit_names))}"
                )
        config = cls(**server, limits=Limits(**limits_data))
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "0.0.0.0"-like wildcard: treat as exposed
