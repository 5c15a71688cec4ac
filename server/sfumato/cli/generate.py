"""``sfumato generate``: one job through a server, its images written next to ``--out``.

The conditioning flags (controls, LoRAs, tiling, outpaint, upscale) are parsed in
conditioning.py, so that this stays a readable list of flags.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import conditioning
from .studio import connection_args


def add_generate_command(sub: Any) -> None:
    g = sub.add_parser("generate", help="run one job through a server and write the images")
    connection_args(g, timeout=600.0)
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative", default="")
    g.add_argument(
        "--task", choices=conditioning.TASKS, help="default: from --image/--mask/--expand"
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
    conditioning.add_arguments(g)
    g.set_defaults(run=_generate)


def _generate(args: argparse.Namespace) -> int:
    from ..client import Client, make_job
    from ..imageio import read_image, read_mask, write_png

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
        **conditioning.params(args, task),
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
    from ..protocol import Progress

    def show(event: object) -> None:
        if isinstance(event, Progress) and sys.stderr.isatty():
            label = (
                "loading model" if event.stage == "loading" else f"step {event.step}/{event.total}"
            )
            print(f"\r{label:<24}", end="", file=sys.stderr, flush=True)

    return show
