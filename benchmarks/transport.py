"""Moving Blender-sized passes from a client to the server, against a plain memory copy.

Payload per size: depth float32 ×1 + normal float16 ×3 + RGBA uint8 ×4 (14 bytes a pixel),
at 1024² and 2048². Three ways, each timed as a round trip (send, receive, decode into
arrays, ack back), median of --runs:

- sfumato: the codec (header + appended blobs, zero-copy decode) sent as a message of 1 MiB
  fragments, compression off — what sfumato.client and the server do;
- msgpack_one_frame: the arrays as msgpack ``bin`` inside one map, sent as one frame
  (packing and unpacking copy every byte) — what a first attempt looks like;
- msgpack_deflate: the same with websockets' defaults (permessage-deflate on);
- memcpy: one copy of the same bytes, the floor.

The arrays travel as a real ``job`` (task refine: the RGBA image, a depth control and a normal
control), decoded by the server's own ``decode_client_message``. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from typing import Any

import msgpack
import numpy as np
from websockets.asyncio.server import serve
from websockets.sync.client import connect

from sfumato.client import DIRECT
from sfumato.protocol import (
    Array,
    Control,
    ControlKind,
    Job,
    JobParams,
    Task,
    decode_client_message,
    encode,
    fragments,
)


def passes(side: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.random((side, side, 1), dtype=np.float32),
        rng.random((side, side, 3), dtype=np.float32).astype(np.float16),
        rng.integers(0, 256, (side, side, 4), dtype=np.uint8),
    ]


def start_server(compression: str | None) -> tuple[str, asyncio.AbstractEventLoop]:
    ready = threading.Event()
    box: dict[str, object] = {}

    async def handler(ws) -> None:
        async for data in ws:
            if data[:1] == b"N":  # naive: msgpack map with bin arrays
                message = msgpack.unpackb(memoryview(data)[1:])
                arrays = [
                    np.frombuffer(a["data"], a["dtype"]).reshape(a["shape"])
                    for a in message["arrays"]
                ]
            else:
                job = decode_client_message(data)
                assert job.image is not None
                arrays = [job.image.to_numpy(), *(c.image.to_numpy() for c in job.controls)]
            await ws.send(str(sum(a.nbytes for a in arrays)))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=compression, max_size=None) as server:
            box["url"] = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await asyncio.Future()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait()
    return box["url"], box["loop"]  # type: ignore[return-value]


def timed(fn, runs: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(side: int, runs: int, fast: Any, plain: Any, naive: Any) -> dict[str, float]:
    arrays = passes(side)
    nbytes = sum(a.nbytes for a in arrays)
    depth, normal, rgba = (Array.from_numpy(a) for a in arrays)
    message = Job(
        "bench", Task.REFINE, JobParams(), image=rgba,
        controls=(Control(ControlKind.DEPTH, depth), Control(ControlKind.NORMAL, normal)),
    )  # fmt: skip

    def send_fast() -> None:
        fast.send(fragments(encode(message)))
        assert int(fast.recv()) == nbytes

    def naive_send(ws) -> None:
        body = {
            "arrays": [
                {"dtype": a.dtype.str, "shape": a.shape, "data": a.tobytes()} for a in arrays
            ]
        }
        ws.send(b"N" + msgpack.packb(body))
        assert int(ws.recv()) == nbytes

    def copy() -> None:
        for a in arrays:
            a.copy()

    t_copy = timed(copy, runs)
    t_fast = timed(send_fast, runs)
    t_plain = timed(lambda: naive_send(plain), runs)
    t_naive = timed(lambda: naive_send(naive), max(2, runs // 2))
    return {
        "side": side, "megabytes": round(nbytes / 1e6, 1),
        "memcpy_ms": round(t_copy * 1e3, 2), "sfumato_ms": round(t_fast * 1e3, 1),
        "msgpack_one_frame_ms": round(t_plain * 1e3, 1), "msgpack_deflate_ms": round(t_naive * 1e3, 1),
        "sfumato_vs_memcpy": round(t_fast / t_copy, 1),
        "msgpack_one_frame_vs_memcpy": round(t_plain / t_copy, 1),
        "msgpack_deflate_vs_memcpy": round(t_naive / t_copy, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    args = parser.parse_args()
    fast_url, _ = start_server(compression=None)
    naive_url, _ = start_server(compression="deflate")
    fast = connect(fast_url, compression=None, max_size=None, **DIRECT)
    plain = connect(fast_url, compression=None, max_size=None, **DIRECT)
    naive = connect(naive_url, max_size=None, **DIRECT)
    report = [measure(side, args.runs, fast, plain, naive) for side in args.sizes]
    print(json.dumps({"benchmark": "transport", "runs": args.runs, "results": report}, indent=2))


if __name__ == "__main__":
    main()
