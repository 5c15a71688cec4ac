"""What one review decision costs: the page's POST /api/decision round trip (HTTP on loopback +
one SQLite transaction with synchronous=FULL) against the same change stored directly and an
HTTP round trip that stores nothing; and GET /api/items for a large batch. Prints JSON.

    .venv/bin/python benchmarks/review.py --outputs 500 --decisions 200

A synthetic batch (a manifest and tiny PNGs, no server, no model) in a temp folder.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from sfumato.review import Decision, Decisions, load_batch
from sfumato.review.web import ReviewServer

TOKEN = "bench"


def make_batch(folder: Path, n: int) -> None:
    items = []
    for i in range(n):
        key = f"p{i % 5}-seg{i % 3}-base-64x64-s{i}"
        Image.new("RGB", (64, 64), (i % 256, 0, 0)).save(folder / f"{key}.png")
        items.append({"key": key, "file": f"{key}.png", "prompt": f"prompt {i % 5}",
                      "full_prompt": f"prompt {i % 5}", "segment": f"seg{i % 3}", "style": "base",
                      "seed": i, "width": 64, "height": 64, "steps": 4, "model": "tiny"})  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"plan": "bench", "items": items}))


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outputs", type=int, default=500)
    ap.add_argument("--decisions", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_batch(folder, args.outputs)
        batch = load_batch(folder)
        keys = list(batch.entries)
        with Decisions(folder) as store:
            server = ReviewServer(batch, store, TOKEN)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            conn = http.client.HTTPConnection("127.0.0.1", server.port)
            host = f"127.0.0.1:{server.port}"
            auth = {"Host": host, "Authorization": f"Bearer {TOKEN}"}
            n = iter(range(10**9))

            def post() -> None:
                i = next(n)
                body = json.dumps(
                    {"key": keys[i % len(keys)], "decision": ("pick", "reject")[i % 2]}
                )
                conn.request("POST", "/api/decision", body,
                             {**auth, "Content-Type": "application/json"})  # fmt: skip
                r = conn.getresponse()
                r.read()
                assert r.status == 200

            def get(path: str) -> None:
                conn.request("GET", path, headers={"Host": host, **auth})
                r = conn.getresponse()
                r.read()
                assert r.status == 200

            def direct() -> None:
                i = next(n)
                store.change(keys[i % len(keys)], decision=(Decision.PICK, Decision.REJECT)[i % 2])

            static = timed(lambda: get("/static/review.css"), args.decisions)
            posted = timed(post, args.decisions)
            stored = timed(direct, args.decisions)
            listed = timed(lambda: get("/api/items"), 20)
            server.shutdown()
            server.server_close()
    print(json.dumps({
        "outputs": args.outputs, "decisions": args.decisions,
        "decision_post_ms": round(posted * 1e3, 2), "decision_store_only_ms": round(stored * 1e3, 2),
        "http_round_trip_ms": round(static * 1e3, 2), "api_items_ms": round(listed * 1e3, 2),
        "post_over_store_only": round(posted / stored, 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
