"""``sfumato models`` (the registry and whose weights are here) and ``sfumato models pull``.

The listing reads the same registry ``serve`` would — ``--registry``, else the one a
``--config`` file names, else the built-in one — and looks at this disk only. ``--url`` asks a
running server instead and prints its ``models`` answer as JSON (what the server's clients
see). ``pull`` needs huggingface_hub (the server extras) but never torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..registry import Registry


def add_models_command(sub: Any) -> None:
    m = sub.add_parser(
        "models", help="the model registry: which weights are here; `models pull NAME` fetches"
    )
    _registry_args(m, argparse_default=None)
    m.add_argument("--json", action="store_true", help="print the listing as JSON")
    m.add_argument(
        "--url",
        "--server",
        dest="url",
        help="ask the running server at this URL instead (prints its model list as JSON)",
    )
    m.add_argument(
        "--token", default=os.environ.get("SFUMATO_TOKEN"), help="server token ($SFUMATO_TOKEN)"
    )
    m.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    m.set_defaults(run=_list)
    commands = m.add_subparsers(dest="models_command")
    p = commands.add_parser(
        "pull", help="download registry entries' weights (resumable, checked against sha256 pins)"
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="registry names to pull")
    p.add_argument(
        "--with-family",
        action="store_true",
        help="also the ControlNets, preview decoders and IP-Adapters (with their image "
        "encoders) of each base model's family",
    )
    p.add_argument(
        "--to",
        type=Path,
        help="a models folder: write DIR/<name> as a diffusers folder (default: the Hugging "
        "Face cache, where hub: sources are read from)",
    )
    _registry_args(p, argparse_default=argparse.SUPPRESS)
    p.set_defaults(run=_pull)


def _registry_args(p: argparse.ArgumentParser, argparse_default: Any) -> None:
    # On the subcommand the defaults are SUPPRESS, so `models --registry X pull …` keeps X.
    p.add_argument(
        "--registry", type=Path, default=argparse_default, help="model registry TOML (as serve)"
    )
    p.add_argument(
        "--config", type=Path, default=argparse_default, help="serve's config file (its registry)"
    )


def load_registry(args: argparse.Namespace) -> Registry:
    """The registry ``serve`` would read with the same flags."""
    path = args.registry
    if path is None and args.config is not None:
        from ..service.config import ServerConfig

        path = ServerConfig.from_file(args.config).registry
    return Registry.load(path)


def _list(args: argparse.Namespace) -> int:
    if args.url:
        return _ask_server(args)
    from ..registry.listing import states
    from ..registry.pull import human

    registry = load_registry(args)
    rows = states(registry)
    if args.json:
        print(json.dumps({"default": registry.default, "models": [r.to_json() for r in rows]}))
        return 0
    width = max(len(r.name) for r in rows)
    for r in rows:
        if r.source.startswith("tiny:"):
            state = "built on first use"
        elif r.present:
            state = f"present  {human(r.size or 0):>9}  {r.where}"
        else:
            state = f"missing  → {r.fix}"
        default = "*" if r.name == registry.default else " "
        print(f"{default}{r.name:<{width}}  {r.kind:<10} {r.family:<5} {state}")
    return 0


def _ask_server(args: argparse.Namespace) -> int:
    from ..client import Client

    with Client(args.url, token=args.token, name="sfumato-cli") as client:
        listing = client.models(timeout=args.timeout)
    print(
        json.dumps(
            {"default": listing.default_model, "models": [m.to_wire() for m in listing.models]},
            indent=2,
        )
    )
    return 0


def _pull(args: argparse.Namespace) -> int:
    from ..registry.pull import family, human, pull

    registry = load_registry(args)
    todo = []
    for name in args.names:
        entry = registry.get(name)  # UnknownModel names the known ones
        for item in family(registry, entry) if args.with_family else [entry]:
            if item not in todo:
                todo.append(item)
    for entry in todo:
        if entry.tiny:
            print(f"{entry.name}: tiny model, built locally on first use — nothing to pull")
            continue
        done = pull(entry, to=args.to, say=lambda line: print(line, file=sys.stderr))
        got = f"{human(done.fetched)} downloaded" if done.fetched else "already here"
        where = done.path / entry.weight if entry.weight else done.path
        print(f"{entry.name}: {got}, {human(done.size)} in {where} (sha256 {done.digest})")
        if args.to is not None:
            weight = f' weight = "{entry.weight}"' if entry.weight else ""
            print(
                f'  use it: [models.{entry.name}] source = "dir:{done.path}"{weight} '
                f'sha256 = "{done.digest}" in your registry'
            )
    return 0
