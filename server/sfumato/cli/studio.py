"""Studio commands: ``sfumato verify``, ``sfumato batch`` (``--from-picks``: rerun a review's
picks), ``sfumato reproduce``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def add_studio_commands(sub: Any) -> None:
    v = sub.add_parser("verify", help="check the content credentials of output PNGs")
    v.add_argument("files", type=Path, nargs="+")
    v.add_argument("--json", action="store_true", help="print the full Sfumato assertion as JSON")
    v.set_defaults(run=_verify)

    b = sub.add_parser(
        "batch", help="run a batch plan: variations × segments × styles, with contact sheets"
    )
    b.add_argument("plan", type=Path, help="plan TOML (see examples/batch-plan.toml)")
    b.add_argument("--out", type=Path, required=True, help="output folder; a rerun resumes it")
    b.add_argument("--in-flight", type=int, default=4, help="jobs queued on the server at once")
    b.add_argument("--from-picks", type=Path, metavar="OUT_DIR",
                   help="rerun only the outputs picked in `sfumato review OUT_DIR`")  # fmt: skip
    b.add_argument("--variations", type=int, default=0,
                   help="with --from-picks: extra seeds per pick")  # fmt: skip
    b.add_argument("--steps", type=int, help="with --from-picks: steps instead of the plan's")
    connection_args(b)
    b.set_defaults(run=_batch)

    r = sub.add_parser("reproduce", help="regenerate an output from its content credentials")
    r.add_argument("file", type=Path)
    r.add_argument("--image", type=Path, help="the original input image (refine/inpaint outputs)")
    r.add_argument("--mask", type=Path, help="the original mask (inpaint outputs)")
    connection_args(r)
    r.set_defaults(run=_reproduce)


def connection_args(p: argparse.ArgumentParser, timeout: float = 3600.0) -> None:
    from ..client import default_url

    p.add_argument(
        "--url",
        default=default_url(),
        help="server URL (default $SFUMATO_URL or ws://127.0.0.1:8746)",
    )
    p.add_argument(
        "--token", default=os.environ.get("SFUMATO_TOKEN"), help="server token ($SFUMATO_TOKEN)"
    )
    p.add_argument("--timeout", type=float, default=timeout, help="seconds to wait")


def _batch(args: argparse.Namespace) -> int:
    from ..batch import PlanError, load_plan, progress_bar, run_plan, write_contact_sheets
    from ..client import Client

    plan, picked = load_plan(args.plan), None
    if args.from_picks:
        plan, picked = _from_picks(args, plan)
    elif args.variations or args.steps:
        raise PlanError("--variations and --steps rerun picks: add --from-picks OUT_DIR")
    with Client(args.url, token=args.token, name="sfumato-batch") as client:
        report = run_plan(plan, client, args.out, in_flight=args.in_flight, timeout=args.timeout,
                          on_progress=progress_bar, items=picked)  # fmt: skip
    items = json.loads(report.manifest.read_text(encoding="utf-8"))["items"]
    html, png = write_contact_sheets(args.out, items, plan.name)
    print(f"{report.generated} generated, {report.skipped} already finished, {len(report.failed)} failed "
          f"of {report.total}")  # fmt: skip
    for key, reason in report.failed:
        print(f"  failed {key}: {reason}")
    print(f"manifest {report.manifest}\ncontact sheet {html}\ncontact sheet {png}")
    return 1 if report.failed else 0


def _from_picks(args: argparse.Namespace, plan: Any) -> tuple[Any, Any]:
    from ..review import ReviewError, picks_rerun, write_lineage

    if args.out.resolve() == args.from_picks.resolve():
        raise ReviewError(
            f"--out {args.out} is the reviewed batch; write the rerun to a new folder"
        )
    rerun = picks_rerun(plan, args.from_picks, variations=args.variations, steps=args.steps)
    write_lineage(args.out, args.from_picks, rerun)
    print(
        f"rerunning {len(rerun.lineage)} picks as {len(rerun.items)} outputs at {rerun.plan.steps} steps"
    )
    return rerun.plan, rerun.items


def _reproduce(args: argparse.Namespace) -> int:
    from ..batch.reproduce import reproduce

    outcome = reproduce(args.file, args.url, args.token, args.image, args.mask, args.timeout)
    print(outcome.summary)
    return 0 if outcome.matches else 1


def _verify(args: argparse.Namespace) -> int:
    from ..provenance import verify_png

    failed = 0
    for path in args.files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{path}: cannot read ({exc.strerror})")
            failed += 1
            continue
        check = verify_png(data)
        if not check.ok:
            failed += 1
            print(f"{path}: {check.state.upper()} — {'; '.join(check.problems) or 'invalid'}")
            continue
        trust = " (untrusted development signer)" if check.untrusted else ""
        print(f"{path}: {check.state.upper()}, signed by {check.signer or 'unknown'}{trust}")
        if check.facts is None:
            print("  no Sfumato assertion")
        elif args.json:
            print(json.dumps(check.facts, indent=2))
        else:
            f = check.facts
            loras = ", ".join(f"{lo['name']}:{lo['weight']}" for lo in f.get("loras", [])) or "none"
            print(
                f"  model {f['model']['name']} sha256 {f['model']['sha256'][:16] or '?'}  seed {f['seed']}"
            )
            print(f"  prompt {f['prompt']!r}  loras {loras}  job {f['job_id']}")
    return 1 if failed else 0
