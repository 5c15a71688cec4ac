"""Studio commands: ``sfumato verify``, ``sfumato batch``, ``sfumato reproduce``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_studio_commands(sub: Any) -> None:
    v = sub.add_parser("verify", help="check the content credentials of output PNGs")
    v.add_argument("files", type=Path, nargs="+")
    v.add_argument("--json", action="store_true", help="print the full Sfumato assertion as JSON")
    v.set_defaults(run=_verify)


def _verify(args: argparse.Namespace) -> int:
    from .provenance import verify_png

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
