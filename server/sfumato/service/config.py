"""Server configuration: defaults, the TOML config file, and the safety rules for binding."""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..protocol import Limits, SfumatoError
from .cluster_config import ClusterConfig, ClusterConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PORT = 8746
MIB = 1024 * 1024
GIB = 1024 * MIB
MIN_FRAME_BYTES = 2 * MIB  # docs/protocol.md section 7: every server takes frames this big
# What --device / server.device may say (engine/devices.py reads the same forms, and checks
# that the device exists when the engine loads: that needs torch, so not here).
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(SfumatoError, ValueError):
    """A setting that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True)
class Resources:
    """The ``[resources]`` table of the config file. Sizes in bytes, times in seconds."""

    hello_timeout: float = 10.0  # a connection must send hello this soon, or it is closed
    max_connections: int = 128  # websocket connections at once; more get too_many_connections
    outbox_bytes: int = 64 * MIB  # unsent bytes queued for one connection before it is closed
    outbox_total_bytes: int = 512 * MIB  # … and for all connections together
    send_timeout: float = 60.0  # a message may stall unsent this long before the peer is dropped
    ping_interval: float = 20.0  # keepalive pings
    ping_timeout: float = 20.0  # a pong must come back this soon
    inflight_bytes: int = 1 * GIB  # client messages held at once: being received or queued jobs
    inflight_wait: float = 10.0  # a message waits this long for room, then gets server_busy
    max_frame_bytes: int = 4 * MIB  # one websocket frame (clients send 1 MiB fragments); ≥ 2 MiB
    retention_days: float = 30.0  # finished results older than this are pruned; 0 keeps them
    retention_bytes: int = 10 * GIB  # the store is pruned (oldest first) past this; 0: no cap
    log_repeat_window: float = 10.0  # one kind of log line: 20 per window, then counted
    input_cache_bytes: int = 256 * MIB  # inputs kept for by-hash reuse (input_ref); 0: off

    def check(self, limits: Limits) -> None:
        """Types and ranges, each error naming the setting; then the cross-checks."""
        for f in fields(self):
            value = getattr(self, f.name)
            integer = f.type in ("int", int)
            ok_type = type(value) is int if integer else type(value) in (int, float)
            if not ok_type:
                kind = "an integer" if integer else "a number"
                raise ConfigError(
                    f"resources.{f.name} must be {kind}, got {value!r}; see docs/quickstart.md"
                )
            if not math.isfinite(value):
                raise ConfigError(f"resources.{f.name} must be a finite number, got {value!r}")
            if value < 0 or (value == 0 and f.name not in _ZERO_MEANS_OFF):
                raise ConfigError(
                    f"resources.{f.name} must be greater than 0, got {value!r}"
                    + ("; 0 turns it off" if f.name in _ZERO_MEANS_OFF else "")
                )
        if self.max_frame_bytes < MIN_FRAME_BYTES:
            raise ConfigError(
                f"resources.max_frame_bytes must be at least {MIN_FRAME_BYTES} (2 MiB: the "
                f"protocol lets a client send a whole header in one frame), got {self.max_frame_bytes}"
            )
        if self.inflight_wait >= self.ping_timeout:
            raise ConfigError(
                f"resources.inflight_wait ({self.inflight_wait:g} s) must be below "
                f"resources.ping_timeout ({self.ping_timeout:g} s): a connection waiting for "
                "room reads nothing, so its keepalive would time out first"
            )
        if self.inflight_bytes < limits.max_message_bytes:
            raise ConfigError(
                f"resources.inflight_bytes ({self.inflight_bytes}) is below "
                f"limits.max_message_bytes ({limits.max_message_bytes}): a message of the "
                "allowed size could never be received; raise inflight_bytes or lower the limit"
            )


_ZERO_MEANS_OFF = frozenset(
    {"retention_days", "retention_bytes", "log_repeat_window", "input_cache_bytes"}
)

# The TOML type each [server] setting must have in a config file, for errors that name it.
_SERVER_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **dict.fromkeys(
        ("host", "token", "model", "device", "results", "cache", "registry", "datasets",
         "signing_cert", "signing_key"),
        ((str,), "a string"),
    ),
    "port": ((int,), "an integer"),
    "png_compression": ((int,), "an integer"),
    "shutdown_grace": ((int, float), "a number of seconds"),
    "preload": ((bool,), "true or false"),
    "credentials": ((bool,), "true or false"),
    "allowed_origins": ((list,), "a list of strings"),
}  # fmt: skip


def _check_server_table(path: Path, server: dict[str, Any]) -> None:
    """Each [server] value's type, before paths and origins are converted (a number where a
    folder belongs would otherwise surface as a TypeError deep inside the start)."""
    for key, value in server.items():
        types, what = _SERVER_TYPES[key]
        strings = value if type(value) is list else [value] if types == (str,) else []
        if type(value) not in types or not all(type(t) is str and "\x00" not in t for t in strings):
            raise ConfigError(
                f"{path}: server.{key} must be {what}, got {value!r}; see docs/quickstart.md"
            )


def check_limits(limits: Limits) -> None:
    """The ``[limits]`` table's types and ranges, each error naming the limit."""
    for f in fields(limits):
        value = getattr(limits, f.name)
        if type(value) is not int or value < 1:
            raise ConfigError(f"limits.{f.name} must be a positive integer, got {value!r}")


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
    # Training datasets (task train, docs/protocol.md 4.2.5): a job names a folder in here.
    datasets: Path = field(default_factory=lambda: default_data_dir() / "datasets")
    cache: Path = field(default_factory=default_cache_dir)
    registry: Path | None = None  # None: the built-in registry
    model: str | None = None  # default model; None: the registry's default
    device: str | None = None  # None: pick CUDA / MPS / CPU
    preload: bool = True  # load the default model in the background right after start
    png_compression: int = 0  # result store PNGs, 0–9: 0 writes 512² in 0.5 ms, 1+ in ~25 ms
    credentials: bool = True  # sign content credentials (C2PA) into every output
    signing_cert: Path | None = None  # PEM chain, leaf first; None: a local development identity
    signing_key: Path | None = None  # PEM PKCS#8 private key of the leaf
    # A graceful stop (SIGTERM) lets the running job finish this many seconds, then interrupts
    # it; it and the queued jobs stay journaled and run again after the restart.
    shutdown_grace: float = 10.0
    limits: Limits = field(default_factory=Limits)
    resources: Resources = field(default_factory=Resources)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # [cluster]: Ray replicas

    def check(self) -> None:
        """Refuse unsafe or impossible settings before anything binds."""
        check_limits(self.limits)
        self.resources.check(self.limits)
        try:
            self.cluster.check()
        except ClusterConfigError as exc:
            raise ConfigError(str(exc)) from None
        if type(self.port) is not int or not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} must be from 0 to 65535 (0 picks a free one)")
        grace = self.shutdown_grace
        if type(grace) not in (int, float) or not 0 <= grace < math.inf:
            raise ConfigError(
                f"shutdown_grace must be a number of seconds ≥ 0, got {self.shutdown_grace!r} "
                "(0 interrupts the running job at once; it runs again after the restart)"
            )
        if type(self.png_compression) is not int or not 0 <= self.png_compression <= 9:
            raise ConfigError(
                f"png_compression must be an integer from 0 to 9, got {self.png_compression!r} "
                "(0 stores PNGs fastest, 9 smallest)"
            )
        if self.device is not None and not DEVICE.match(str(self.device).strip().lower()):
            raise ConfigError(
                f"device {self.device!r} is not a device; use cpu, cuda, cuda:<index>, mps or auto"
            )
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone on that network could "
                "drive this GPU server. Set --token (or $SFUMATO_TOKEN), or bind 127.0.0.1"
            )

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> ServerConfig:
        """Read ``[server]``, ``[limits]``, ``[resources]`` and ``[cluster]``; keyword
        overrides (from flags) win. Every setting is checked here (type, range, cross-checks),
        each error naming the file and the setting, so ``serve`` refuses a bad file before it
        binds or loads."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; check --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        unknown = set(data) - {"server", "limits", "resources", "cluster"}
        if unknown:
            raise ConfigError(
                f"{path}: unknown table [{sorted(unknown)[0]}]; use [server], [limits], "
                "[resources] or [cluster]"
            )
        server = dict(data.get("server", {}))
        known = {f.name for f in fields(cls)} - {"limits", "resources", "cluster"}
        for key in server:
            if key not in known:
                raise ConfigError(
                    f"{path}: unknown setting server.{key}; known: {', '.join(sorted(known))}"
                )
        _check_server_table(path, server)
        for key in ("results", "cache", "registry", "datasets", "signing_cert", "signing_key"):
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
        resources_data = data.get("resources", {})
        resource_names = {f.name for f in fields(Resources)}
        for key in resources_data:
            if key not in resource_names:
                raise ConfigError(
                    f"{path}: unknown setting resources.{key}; "
                    f"known: {', '.join(sorted(resource_names))}"
                )
        try:
            cluster = ClusterConfig.from_table(path, data.get("cluster", {}))
        except ClusterConfigError as exc:
            raise ConfigError(str(exc)) from None
        config = cls(
            **server,
            limits=Limits(**limits_data),
            resources=Resources(**resources_data),
            cluster=cluster,
        )
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        try:  # every value's type and range now, at reading, not when a client meets it
            config.check()
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "0.0.0.0"-like wildcard: treat as exposed
