"""``sfumato`` command line: serve | generate | models | demo.

Only ``serve`` (and ``demo``, which starts a server) need the server extras; ``generate`` and
``models`` are thin users of :class:`sfumato.client.Client`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__, cli_conditioning
from .protocol import SfumatoError
from .studio_cli import add_studio_commands, connection_args

EXIT_FAILED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except SfumatoError as exc:
        print(f"sfumato: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfumato", description="Local diffusion server for Blender and Krita."
    )
    p.add_argument("--version", action="version", version=f"sfumato {__version__}")
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--host", help="address to bind (default 127.0.0.1; others need --token)")
    s.add_argument("--port", type=int, help="port (default 8746; 0 picks a free one)")
    s.add_argument("--model", help="default model, by registry name")
    s.add_argument("--config", type=Path, help="TOML config file ([server] and [limits] tables)")
    s.add_argument("--results", type=Path, help="result store folder")
    s.add_argument("--cache", type=Path, help="model cache folder (tiny models are built here)")
    s.add_argument("--registry", type=Path, help="model registry TOML (default: built-in)")
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
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(run=_serve)

    g = sub.add_parser("generate", help="run one job through a server and write the images")
    connection_args(g, timeout=600.0)
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative", default="")
    g.add_argument(
        "--task", choices=cli_conditioning.TASKS, help="default: from --image/--mask/--expand"
    )
    g.add_argument("--width", type=int, default=512)
    g.add_argument("--height", type=int, default=512)
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--guidance", type=float, default=7.0)
    g.add_argument("--seed", type=int)
    g.add_argument("--variants", type=int, default=1)
    g.add_argument("--strength", type=float, help="default 0.75; upscale 0.3, outpaint 1")
    g.add_argument("--model", help="registry name (default: the server's)")
    g.add_argument("--image", type=Path, help="input image (refine, inpaint)")
    g.add_argument("--mask", type=Path, help="inpaint mask: white = regenerate")
    g.add_argument("--out", type=Path, required=True, help="output PNG; variants add -0, -1 …")
    cli_conditioning.add_arguments(g)
    g.set_defaults(run=_generate)

    m = sub.add_parser("models", help="print the server's model registry as JSON")
    connection_args(m, timeout=60.0)
    m.set_defaults(run=_models)

    k = sub.add_parser("package", help="build the Blender extension or the Krita plugin zip")
    k.add_argument("host", choices=("blender", "krita"))
    k.add_argument("--out", type=Path, default=Path("dist"), help="folder for the zip")
    k.set_defaults(run=_package)

    add_studio_commands(sub)

    d = sub.add_parser("demo", help="start a server on the tiny model and generate one image")
    d.add_argument(
        "--out", type=Path, default=Path("sfumato-demo"), help="folder for the demo's files"
    )
    d.add_argument(
        "--blender-python", type=Path, help="also run the Blender demo with this Python (bpy)"
    )
    d.set_defaults(run=_demo)
    return p


def _serve(args: argparse.Namespace) -> int:
    from .service import ConfigError, ServerConfig, run

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    overrides: dict[str, Any] = {
        "host": args.host, "port": args.port, "model": args.model, "results": args.results,
        "cache": args.cache, "registry": args.registry, "device": args.device, "token": args.token,
        "allowed_origins": tuple(args.allowed_origins) if args.allowed_origins else None,
        "preload": False if args.no_preload else None,
    }  # fmt: skip
    try:
        if args.config:
            config = ServerConfig.from_file(args.config, **overrides)
        else:
            config = ServerConfig(**{k: v for k, v in overrides.items() if v is not None})
        run(config)
    except ConfigError as exc:
        print(f"sfumato serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .client import Client, make_job
    from .imageio import read_image, read_mask, write_png

    image = read_image(args.image) if args.image else None
    mask = read_mask(args.mask) if args.mask else None
    task = args.task or (
        "inpaint" if mask is not None
        else ("outpaint" if args.expand else "refine") if image is not None
        else "generate"
    )  # fmt: skip
    params = {
        "prompt": args.prompt, "negative": args.negative, "width": args.width,
        "height": args.height, "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
        "variants": args.variants, "model": args.model,
        "files": True,  # the server's signed PNGs: content credentials travel with them
        **cli_conditioning.params(args, task),
    }  # fmt: skip
    job = replace(make_job(task, image, mask, **params), controls=tuple(args.control))
    with Client(args.url, token=args.token, name="sfumato-cli") as client:
        print(f"job {job.id}", flush=True)
        result = client.run(job, timeout=args.timeout, on_event=_progress_printer())
    if result.tiny:
        print("note: the server ran the tiny model; its images are noise", file=sys.stderr)
    for n, image_out in enumerate(result.images):
        path = (
            args.out
            if len(result.images) == 1
            else args.out.with_name(f"{args.out.stem}-{n}{args.out.suffix}")
        )
        if n < len(result.files):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(result.files[n])
        else:
            write_png(path, image_out.to_numpy())
        print(f"{path}  seed {result.seeds[n]}", flush=True)
    return 0


def _progress_printer() -> Any:
    from .protocol import Progress

    def show(event: object) -> None:
        if isinstance(event, Progress) and sys.stderr.isatty():
            label = (
                "loading model" if event.stage == "loading" else f"step {event.step}/{event.total}"
            )
            print(f"\r{label:<24}", end="", file=sys.stderr, flush=True)

    return show


def _models(args: argparse.Namespace) -> int:
    from .client import Client

    with Client(args.url, token=args.token, name="sfumato-cli") as client:
        listing = client.models(timeout=args.timeout)
    print(
        json.dumps(
            {"default": listing.default_model, "models": [m.to_wire() for m in listing.models]},
            indent=2,
        )
    )
    return 0


def _package(args: argparse.Namespace) -> int:
    from .packaging import build

    print(build(args.host, args.out))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.blender_python)


if __name__ == "__main__":
    sys.exit(main())
