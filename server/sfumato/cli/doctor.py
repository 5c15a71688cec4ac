"""``sfumato doctor``: everything that stands between this machine and serving, each line
with its fix; the exit status says whether anything blocks ``sfumato serve``.

The checks live in :mod:`sfumato.service.health` (the server's ``welcome`` says the same
facts in short); this module runs them in order and prints them, as text or ``--json``.
Takes the same ``--config`` and flags as ``serve``, so it checks what ``serve`` would use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .. import __version__

EXIT_BLOCKED = 1  # something blocks serving (a FAIL line)
MARK = {"ok": "ok  ", "note": "note", "warn": "WARN", "fail": "FAIL"}


def add_doctor_command(sub: Any) -> None:
    d = sub.add_parser(
        "doctor", help="check torch, the GPU, disk, models, the port and the config; say the fixes"
    )
    d.add_argument("--config", type=Path, help="the TOML config file serve would read")
    d.add_argument("--host", help="address serve would bind")
    d.add_argument("--port", type=int, help="port serve would listen on")
    d.add_argument("--registry", type=Path, help="model registry TOML (default: built-in)")
    d.add_argument("--model", help="default model, by registry name")
    d.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto")
    d.add_argument(
        "--token", default=os.environ.get("SFUMATO_TOKEN"), help="as serve's ($SFUMATO_TOKEN)"
    )
    d.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    d.set_defaults(run=run_doctor)


def diagnose(args: argparse.Namespace) -> dict[str, Any]:
    """All findings and the torch facts, as one JSON-ready report."""
    from ..service import health

    config, findings = health.check_config(
        args.config, host=args.host, port=args.port, registry=args.registry,
        model=args.model, device=args.device, token=args.token,
    )  # fmt: skip
    registry, problems = health.load_registry(config)
    findings += problems
    if registry is not None:
        default = config.model or registry.default
        if default not in registry:
            findings.append(
                health.Finding(
                    "models",
                    health.Level.FAIL,
                    f"the default model {default!r} is not in the registry",
                    f"pick one of {', '.join(registry.of_kind('base'))} (--model / server.model)",
                )
            )
        findings += health.check_models(registry, default)
    findings += health.check_port(config) + health.loopback_note(config)
    findings += health.check_disk(config)
    facts, torch_findings = health.check_torch(config)
    findings += torch_findings
    return {
        "sfumato": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "blocking": health.blocking(findings),
        "findings": [f.to_json() for f in findings],
        "torch": None if facts is None else _facts_json(facts),
    }


def _facts_json(facts: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(facts), "gpus": [asdict(g) for g in facts.gpus]}


ORDER = ("config", "torch", "device", "port", "disk", "models")


def run_doctor(args: argparse.Namespace) -> int:
    report = diagnose(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"sfumato {report['sfumato']} on Python {report['python']}")
        findings = sorted(report["findings"], key=lambda f: ORDER.index(f["area"]))
        for f in findings:
            print(f"{MARK[f['level']]} {f['area']:<7} {f['text']}")
            if f["fix"]:
                print(f"             fix: {f['fix']}")
        fails = sum(f["level"] == "fail" for f in findings)
        warns = sum(f["level"] == "warn" for f in findings)
        if fails:
            print(f"{fails} problem(s) block serving; fix the FAIL lines and run doctor again")
        else:
            print(f"nothing blocks serving ({warns} warning(s)); start it with `sfumato serve`")
    return EXIT_BLOCKED if report["blocking"] else 0
