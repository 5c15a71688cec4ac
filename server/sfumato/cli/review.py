"""``sfumato review OUT_DIR``: serve a batch's review page on loopback, or ``--export`` its picks."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8747  # the server's port + 1


def add_review_command(sub: Any) -> None:
    r = sub.add_parser(
        "review", help="review a batch in the browser: pick, reject, star, comment; export picks"
    )
    r.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a folder `sfumato batch` wrote")
    r.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; another is served only when named)")  # fmt: skip
    r.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")  # fmt: skip
    r.add_argument("--token", default=os.environ.get("SFUMATO_TOKEN"),
                   help="the page's token ($SFUMATO_TOKEN; default: a new random one)")  # fmt: skip
    r.add_argument(
        "--reviewer", default=None, help="name recorded with each decision (default: $USER)"
    )
    r.add_argument("--export", type=Path, metavar="DEST",
                   help="copy the picks and write decisions.csv/json into DEST, then exit")  # fmt: skip
    r.set_defaults(run=_review)


def _review(args: argparse.Namespace) -> int:
    from ..review import Decisions, export_picks, load_batch

    batch = load_batch(args.out_dir)
    with Decisions(args.out_dir) as decisions:
        if args.export:
            report = export_picks(batch, decisions, args.export)
            print(f"{report.picked} picked of {report.reviewed} reviewed: {len(report.files)} files "
                  f"copied to {report.folder}, decisions in decisions.csv and decisions.json")  # fmt: skip
            return 0
        return _serve(args, batch, decisions)


def _serve(args: argparse.Namespace, batch: Any, decisions: Any) -> int:
    from ..review import ReviewError
    from ..review.web import ReviewServer

    reviewer = args.reviewer if args.reviewer is not None else _user()
    token = args.token or secrets.token_urlsafe(18)
    try:
        server = ReviewServer(batch, decisions, token, args.host, args.port, reviewer)
    except OSError as exc:
        raise ReviewError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another "
            "--port (0 picks a free one)",
            "--port",
        ) from None
    if not server.loopback:
        print(f"sfumato review: serving on {args.host}, not loopback: anyone who can reach it "
              "and holds the token can change decisions", file=sys.stderr)  # fmt: skip
    print(
        f"reviewing {len(batch.entries)} outputs of {batch.plan!r}; decisions in {decisions.path}"
    )
    print(f"open {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
