"""How close admission's result bound (``Job.result_bytes``, checked by ``service.admission``) is to real results:
tiny-model jobs with signed PNG files through ``sfumato serve``, the real message size next to
the bound, and the bytes a signed PNG carries beyond its pixel rows (chunks, zlib framing, the
C2PA manifest) next to what the bound allows for them. Prints JSON.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/result_sizes.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from sfumato.cli.demo import start_server
from sfumato.client import Client, make_job
from sfumato.protocol import encode
from sfumato.protocol.messages import PNG_EXTRA_BYTES
from sfumato.service.admission import result_bytes

CASES = ((256, 1), (512, 2), (512, 4))  # (side, variants)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sfumato-sizes-"))
    proc, url = start_server(work / "results", "--cache", str(work / "cache"))
    figures = []
    try:
        with Client(url, name="bench-sizes") as client:
            for side, variants in CASES:
                job = make_job("generate", prompt="a long prompt " * 280, width=side,
                               height=side, steps=1, variants=variants, files=True, seed=1)  # fmt: skip
                result = client.run(job, timeout=600)
                rows = side * (side * 3 + 1)
                sent = sum(chunk.nbytes for chunk in encode(result))
                figures.append({
                    "side": side, "variants": variants, "message_bytes": sent,
                    "bound_bytes": result_bytes(job),
                    "bound_over_real": round(result_bytes(job) / sent, 3),
                    "png_bytes_beyond_rows_max": max(len(f) for f in result.files) - rows,
                    "png_extra_allowed": rows // 1000 + PNG_EXTRA_BYTES,
                })  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps({"result_sizes": figures}, indent=2))


if __name__ == "__main__":
    main()
