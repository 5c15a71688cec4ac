"""``sfumato`` command line: the parser, the exit codes, and the small commands (models,
package, demo). ``serve`` lives in serve.py, ``generate`` and its flags in generate.py and
conditioning.py, ``models`` and ``models pull`` in models.py, the studio commands (verify,
batch, reproduce) in studio.py, review in review.py.

Only ``serve`` (and ``demo``, which starts a server) need the server extras (``models pull``
needs their huggingface_hub); ``generate`` is a thin user of :class:`sfumato.client.Client`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..protocol import SfumatoError
from .doctor import add_doctor_command
from .generate import add_generate_command
from .models import add_models_command
from .review import add_review_command
from .serve import EXIT_USAGE, add_serve_command
from .studio import add_studio_commands
from .train import add_train_commands

EXIT_FAILED = 1


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
    except OSError as exc:  # a file named on the command line: unreadable, unwritable, missing
        where = f" {exc.filename}" if exc.filename else ""
        print(f"sfumato: cannot use{where}: {exc.strerror or exc}; check the path", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sfumato", description="Local diffusion server for Blender and Krita."
    )
    p.add_argument("--version", action="version", version=f"sfumato {__version__}")
    sub = p.add_subparsers(dest="command")

    add_serve_command(sub)
    add_generate_command(sub)

    add_models_command(sub)

    k = sub.add_parser(
        "package", help="build the Blender extension or the Krita plugin zip (all: both)"
    )
    k.add_argument("host", choices=("blender", "krita", "all"))
    k.add_argument("--out", type=Path, default=Path("dist"), help="folder for the zip")
    k.set_defaults(run=_package)

    add_studio_commands(sub)
    add_doctor_command(sub)
    add_review_command(sub)
    add_train_commands(sub)

    d = sub.add_parser("demo", help="start a server on the tiny model and generate one image")
    d.add_argument(
        "--out", type=Path, default=Path("sfumato-demo"), help="folder for the demo's files"
    )
    d.add_argument(
        "--blender-python", type=Path, help="also run the Blender demo with this Python (bpy)"
    )
    d.set_defaults(run=_demo)
    return p


def _package(args: argparse.Namespace) -> int:
    from ..packaging import build, build_all

    for path in build_all(args.out) if args.host == "all" else [build(args.host, args.out)]:
        print(path)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.blender_python)
