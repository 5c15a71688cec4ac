"""What stands between this machine and serving: the checks ``sfumato doctor`` prints, and
the short form the server puts into ``welcome.system`` (docs/protocol.md 5.1.1).

Each check gives :class:`Finding`\\ s — an area, a level, what was found and the fix — so the
CLI, the JSON output and the welcome all say the same thing. Torch is never imported here:
the device facts come from ``sfumato.engine.system`` (the one place that may import it),
imported only inside :func:`check_torch` so that a broken torch is a finding, not a crash.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol import ModelInfo, SystemInfo
from ..registry import ModelEntry, Registry, RegistryError, listing
from ..registry.weights import hub_cache, present
from .config import ConfigError, ServerConfig, is_loopback

if TYPE_CHECKING:
    from ..engine.system import TorchFacts

GIB = 2**30
MODEL_SPACE = 10 * GIB  # an SDXL checkpoint with a ControlNet or two, in the cache
RESULT_SPACE = 1 * GIB  # a few hundred results
SERVER_EXTRAS = "pip install 'sfumato[server]' (docs/quickstart.md has the command per GPU)"


class Level(str, Enum):
    OK = "ok"
    NOTE = "note"  # worth knowing, nothing to fix
    WARN = "warn"  # serving works, but something will fail or be slow
    FAIL = "fail"  # blocks serving (or every job)


@dataclass(frozen=True)
class Finding:
    area: str  # config, torch, device, disk, models, port
    level: Level
    text: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.value}


def blocking(findings: Iterable[Finding]) -> bool:
    return any(f.level is Level.FAIL for f in findings)


# --------------------------------------------------------------------------- config


def check_config(path: Path | None, **overrides: Any) -> tuple[ServerConfig, list[Finding]]:
    """The config ``serve`` would use; a bad one is a failure and the defaults stand in, so
    the other checks still run."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        config = ServerConfig.from_file(path, **given) if path else ServerConfig(**given)
        config.check()
    except ConfigError as exc:
        fix = "fix that setting in the config file" if path else "fix that flag"
        return ServerConfig(), [Finding("config", Level.FAIL, str(exc), fix)]
    where = f"config {path}" if path else "no config file: the defaults"
    return config, [Finding("config", Level.OK, f"{where} (checked)")]


# --------------------------------------------------------------------------- torch and device


def check_torch(config: ServerConfig) -> tuple[TorchFacts | None, list[Finding]]:
    """Import the engine (torch, diffusers …) as the server's worker would, then read the
    device facts. Returns None for the facts when the engine does not import."""
    try:
        from ..engine.system import probe
    except Exception as exc:  # ImportError, or a broken install raising anything on import
        missing = getattr(exc, "name", None) or "the ML engine"
        text = f"{missing} does not import: {type(exc).__name__}: {str(exc)[:300]}"
        return None, [Finding("torch", Level.FAIL, text, SERVER_EXTRAS)]
    facts = probe(config.device, memory=True)
    return facts, [*torch_findings(facts), _libraries()]


def _libraries() -> Finding:
    """The versions the engine imported (bug reports need them)."""
    from importlib import metadata

    found = []
    for name in ("diffusers", "transformers", "peft", "controlnet-aux"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (no metadata)")
    return Finding("torch", Level.OK, "the ML engine imports: " + ", ".join(found))


def torch_findings(facts: TorchFacts) -> list[Finding]:
    """The device facts as findings: pure, so each odd machine can be tested without it."""
    build = {"cuda": f"CUDA {facts.cuda} build", "rocm": f"ROCm {facts.hip} build"}.get(
        facts.build, "CPU build"
    )
    out = [Finding("torch", Level.OK, f"torch {facts.torch} ({build}, {facts.machine})")]
    for gpu in facts.gpus:
        free = f", {gpu.free / GIB:.1f} GiB free" if gpu.free else ""
        out.append(
            Finding(
                "device", Level.OK, f"cuda:{gpu.index} {gpu.name}: {gpu.total / GIB:.1f} GiB{free}"
            )
        )
    if facts.gpus:
        driver = facts.driver or "its version could not be read"
        out.append(Finding("device", Level.OK, f"GPU driver: {driver}"))
    if facts.mps:
        out.append(Finding("device", Level.OK, "Apple MPS is available"))
    if facts.device_problem:
        out.append(
            Finding(
                "device",
                Level.FAIL,
                facts.device_problem,
                "set server.device / --device to one listed above, or auto",
            )
        )
    elif facts.device == "cpu":
        fix = cpu_fix(facts)
        out.append(
            Finding("device", Level.WARN, "jobs will run on the CPU: minutes per real image", fix)
        )
    else:
        out.append(Finding("device", Level.OK, f"jobs will run on {facts.device_label()}"))
    return out


def cpu_fix(facts: TorchFacts) -> str:
    if facts.build == "cpu" and not facts.mps:
        return (
            "on a machine with an NVIDIA or AMD GPU install torch's CUDA or ROCm build "
            "(docs/quickstart.md, 'Install for users')"
        )
    if facts.build in ("cuda", "rocm"):
        tool = "nvidia-smi" if facts.build == "cuda" else "rocm-smi"
        driver = f"driver {facts.driver}" if facts.driver else "no GPU driver found"
        return (
            f"this {facts.build.upper()} build of torch sees no GPU ({driver}): on a GPU machine "
            f"install or repair the driver ({tool} must list the GPU); else ignore this"
        )
    return "use --device auto (or mps) to run on the Apple GPU"


# --------------------------------------------------------------------------- disk


def free_bytes(path: Path) -> tuple[Path, int]:
    """Free space where ``path`` is or will be (its nearest existing parent)."""
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


def check_disk(config: ServerConfig) -> list[Finding]:
    out = []
    places = (
        ("Hugging Face cache", hub_cache(), MODEL_SPACE, "hub models are downloaded here"),
        ("model cache", config.cache, MODEL_SPACE, "tiny models are built here"),
        ("result store", config.results, RESULT_SPACE, "results are kept here"),
    )
    for label, path, need, why in places:
        try:
            _, free = free_bytes(path)
        except OSError as exc:
            out.append(
                Finding(
                    "disk",
                    Level.FAIL,
                    f"{label} {path}: {exc.strerror or exc}",
                    "check the path and its permissions",
                )
            )
            continue
        text = f"{label} {path}: {free / GIB:.1f} GiB free ({why})"
        if free < need:
            fix = f"free space there, or point it elsewhere (below {need / GIB:.0f} GiB is tight)"
            out.append(Finding("disk", Level.WARN, text, fix))
        else:
            out.append(Finding("disk", Level.OK, text))
    return out


# --------------------------------------------------------------------------- models


def load_registry(config: ServerConfig) -> tuple[Registry | None, list[Finding]]:
    try:
        registry = Registry.load(config.registry)
    except RegistryError as exc:
        return None, [Finding("models", Level.FAIL, str(exc), "fix the registry file")]
    return registry, []


def _present(entry: ModelEntry) -> bool:
    """An unreadable cache folder counts as missing (the fix names where to put the files),
    never as an exception in a hello or in the doctor."""
    try:
        return present(entry)
    except OSError:
        return False


def check_models(registry: Registry, default: str) -> list[Finding]:
    """Each entry present or missing; the default model missing blocks (every job that names
    no model would fail), any other missing one is a warning."""
    out = []
    tiny = [e.name for e in registry.entries.values() if e.tiny and e.name != default]
    if tiny:
        text = (
            f"{len(tiny)} built-in tiny models ({tiny[0]} …): built on first use, images are noise"
        )
        out.append(Finding("models", Level.OK, text))
    for entry in registry.entries.values():
        label = f"{entry.name} ({entry.kind}, {entry.family})"
        if entry.name == default:
            label += ", the default"
        if entry.tiny:
            if entry.name == default:
                text = f"{label}: built-in tiny model, built on first use; images are noise"
                fix = "configure a real model (docs/quickstart.md) for real pictures"
                out.append(Finding("models", Level.NOTE, text, fix))
            continue
        try:  # the same facts and fix as `sfumato models` (registry/listing.py)
            state = listing.local_state(entry, registry.path)
        except OSError as exc:
            text = f"{label}: its weights cannot be read ({exc.strerror or exc})"
            out.append(Finding("models", Level.WARN, text, "check the folder's permissions"))
            continue
        if state.present:
            size = f", {state.size / GIB:.1f} GiB" if state.size else ""
            out.append(Finding("models", Level.OK, f"{label}: present{size} ({state.where})"))
        else:
            level = Level.FAIL if entry.name == default else Level.WARN
            out.append(Finding("models", level, f"{label}: weights missing", state.fix))
    return out


# --------------------------------------------------------------------------- port


def check_port(config: ServerConfig, timeout: float = 3.0) -> list[Finding]:
    """Free, a Sfumato server already (the plugins can use it), or taken by something else."""
    where = f"{config.host}:{config.port}"
    if config.port == 0:
        return [Finding("port", Level.OK, "port 0: the server picks a free one at start")]
    problem = _bind_problem(config.host, config.port)
    if problem is None:
        return [Finding("port", Level.OK, f"{where} is free")]
    if problem.errno != errno.EADDRINUSE:
        return [
            Finding(
                "port",
                Level.FAIL,
                f"cannot listen on {where}: {problem.strerror or problem}",
                "pick another server.host / --host or server.port / --port",
            )
        ]
    server = sfumato_at(config.host, config.port, timeout)
    if server is not None:
        return [
            Finding(
                "port",
                Level.NOTE,
                f"{where}: a Sfumato server ({server}) already serves there; the plugins can use it",
                "to run a second server, give it another --port",
            )
        ]
    return [
        Finding(
            "port",
            Level.FAIL,
            f"{where} is taken by another program (not a Sfumato server)",
            "stop that program, or set server.port / --port (and the plugins' URL) to a free port",
        )
    ]


def _bind_problem(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except OSError as exc:  # a host name that does not resolve
        return exc
    with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's server does
        try:
            s.bind(infos[0][4])
        except OSError as exc:
            return exc
    return None


def sfumato_at(host: str, port: int, timeout: float) -> str | None:
    """ "sfumato 0.1.0" when a Sfumato server answers the websocket handshake there (its
    ``Server`` header says so, token or not), else None."""
    from websockets.sync.client import connect

    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    url = f"ws://[{target}]:{port}" if ":" in target else f"ws://{target}:{port}"
    try:
        with contextlib.closing(connect(url, open_timeout=timeout, compression=None)) as ws:
            header = ws.response.headers.get("Server", "") if ws.response else ""
    except Exception:  # not websocket, not HTTP, closed at once: not ours
        return None
    return header.replace("/", " ", 1) if header.startswith("sfumato/") else None


# --------------------------------------------------------------------------- welcome


def system_info(
    registry: Registry,
    default: str,
    config: ServerConfig,
    facts: TorchFacts | None,
    infos: Iterable[ModelInfo] | None = None,
) -> SystemInfo:
    """``welcome.system``: the counts, the device once the engine has loaded, and the
    warnings a user can act on (each with its fix), without the port and config checks
    (a server that answers has passed those). ``infos``: the welcome's model list, whose
    ``available`` flags already say which weights are here (not looked up twice a hello)."""
    known = {i.name: i.available for i in infos} if infos is not None else {}

    def here(e: ModelEntry) -> bool:
        return known[e.name] if e.name in known else _present(e)

    entries = [e for e in registry.entries.values() if not e.tiny]
    have = sum(1 for e in entries if here(e))
    tiny = len(registry.entries) - len(entries)
    # Of the models only the default one missing (a blocking finding): the others are counted;
    # each would otherwise repeat in every welcome.
    findings = []
    entry = registry.entries.get(default)
    if entry is not None and not entry.tiny and not here(entry):
        text = f"the default model {default}: weights missing"
        findings.append(Finding("models", Level.FAIL, text, listing.fix(entry, registry.path)))
    findings += check_disk(config)
    if facts is not None:
        findings += [f for f in torch_findings(facts) if f.area == "device"]
    warnings = tuple(
        f"{f.text}; {f.fix}" if f.fix else f.text
        for f in findings
        if f.level in (Level.WARN, Level.FAIL)
    )
    return SystemInfo(
        device=facts.device_label() if facts is not None else "",
        vram=facts.vram() if facts is not None else 0,
        torch=facts.torch if facts is not None else "",
        models_present=have + tiny,
        models_missing=len(entries) - have,
        warnings=_short(warnings),
    )


def _short(warnings: tuple[str, ...], keep: int = 8) -> tuple[str, ...]:
    """A welcome says the first few; the rest are counted and left to ``sfumato doctor``."""
    if len(warnings) <= keep:
        return warnings
    more = len(warnings) - keep + 1
    return (*warnings[: keep - 1], f"{more} more: run `sfumato doctor` on the server machine")


def loopback_note(config: ServerConfig) -> list[Finding]:
    if is_loopback(config.host):
        return []
    return [
        Finding(
            "port",
            Level.NOTE,
            f"listening on {config.host}: other machines can reach this server (a token is set)",
        )
    ]
