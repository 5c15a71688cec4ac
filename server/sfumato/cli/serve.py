"""``sfumato serve``: flags → :class:`sfumato.service.ServerConfig` → the server.

The service (websockets' asyncio server, and later the engine) is imported only when the
command runs, so the other commands start without the server extras.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2  # argparse's code for a usage error; a config that cannot work is one too


def add_serve_command(sub: Any) -> None:
    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--host", help="address to bind (default 127.0.0.1; others need --token)")
    s.add_argument("--port", type=int, help="port (default 8746; 0 picks a free one)")
    s.add_argument("--model", help="default model, by registry name")
    s.add_argument("--config", type=Path, help="TOML config file ([server] and [limits] tables)")
    s.add_argument("--results", type=Path, help="result store folder")
    s.add_argument("--cache", type=Path, help="model cache folder (tiny models are built here)")
    s.add_argument("--registry", type=Path, help="model registry TOML (default: built-in)")
    s.add_argument("--datasets", type=Path, help="folder of training datasets (train jobs)")
    s.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    s.add_argument(
        "--token",
        default=os.environ.get("SFUMATO_TOKEN"),
        help="require this token ($SFUMATO_TOKEN)",
    )
    s.add_argument(
        "--allow-origin",
        action="append",
        dest="allowed_origins",
        help="a browser Origin to allow (repeatable)",
    )
    s.add_argument(
        "--no-preload", action="store_true", help="load the model at the first job, not at start"
    )
    s.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the engine on replicas of a Ray cluster: ADDRESS (auto, HOST:6379, "
        "ray://HOST:10001) joins one, none starts a local one (needs sfumato[cluster])",
    )
    s.add_argument(
        "--replicas", type=int, help="engine replicas on the cluster (default: one per GPU)"
    )
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ..service import ConfigError, ServerConfig, run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    overrides: dict[str, Any] = {
        "host": args.host, "port": args.port, "model": args.model, "results": args.results,
        "cache": args.cache, "registry": args.registry, "datasets": args.datasets,
        "device": args.device, "token": args.token,
        "allowed_origins": tuple(args.allowed_origins) if args.allowed_origins else None,
        "preload": False if args.no_preload else None,
    }  # fmt: skip
    try:
        if args.config:
            config = ServerConfig.from_file(args.config, **overrides)
        else:
            config = ServerConfig(**{k: v for k, v in overrides.items() if v is not None})
        config = _cluster_flags(config, args)
        run(config)
    except ConfigError as exc:
        print(f"sfumato serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _cluster_flags(config: Any, args: argparse.Namespace) -> Any:
    """``--ray [ADDRESS]`` and ``--replicas N`` over the config file's ``[cluster]`` table."""
    from dataclasses import replace

    if args.ray is None and args.replicas is None:
        return config
    cluster = config.cluster
    if args.ray is not None:
        cluster = replace(cluster, ray=True, address=args.ray)
    if args.replicas is not None:
        cluster = replace(cluster, replicas=args.replicas)
    if not cluster.ray:
        from ..service import ConfigError

        raise ConfigError(
            "--replicas needs --ray (or ray = true in the config file's [cluster] table): "
            "replicas run on a Ray cluster"
        )
    config = replace(config, cluster=cluster)
    config.check()  # --replicas -1 is refused like a bad config file, naming the setting
    return config
