"""The live path's figures (issue 12): what the server adds to a live edit, how a burst of
edits is absorbed, what shared memory and inputs by hash cost. Prints JSON.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/live.py [--runs 9]

- ``edit_overhead_ms``: a live refine (tiny sd15, 256², 1 step, strength 1) from the client's
  submit to its result, minus the bare diffusers img2img call of the same job; medians of
  --runs, alternating. Goal ≤ 30 ms.
- ``burst``: 20 live edits of one key sent evenly within one second, and 20 sent back to
  back; how many ran to a result (the rest were superseded). Goal ≤ 2.
- ``edit_added_around_inference_ms``: the same, minus the job's own inference as the server
  timed it (``result.timings.run``): what the path adds, free of the benchmark's two processes
  competing for the CPU.
- ``pass_set_2048``: a 2048² pass set (depth float32, normal float16 × 3, RGBA uint8: 56 MiB)
  sent to the server, which reads it and answers (an unknown model: refused after the inputs
  are read), by shared memory and by socket, each as a ratio to one memcpy of the same bytes
  in this process; and the shared-memory mechanism alone (the client's encode into its
  segments, the server's decode out of them) in one process. Goal (shm) ≤ 4×.
- ``repeat_by_hash_bytes``: the bytes of the second job that sends the same 256² image
  (by hash). Goal < 1 KB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline

from sfumato import shmem
from sfumato.cli.demo import start_server
from sfumato.client import Client, make_job
from sfumato.engine.tiny import ensure_tiny
from sfumato.protocol import Control, ControlKind, Error, ErrorCode, Result, encode
from sfumato.protocol.arrays import Array

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.counting import Counting  # noqa: E402  (the live tests' byte-counting Client)

SIDE, SEED = 256, 1


def edit(image: np.ndarray, key: str = "bench", **extra: Any) -> Any:
    return make_job(
        "refine", image, prompt="a lighthouse", steps=1, strength=1.0, seed=SEED,
        live=True, live_key=key, **extra,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sfumato-bench-live-"))
    folder = ensure_tiny(work / "cache", "sd15")
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        folder, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)

    def bare() -> None:
        with torch.inference_mode():
            pipe(
                "a lighthouse", image=image.astype(np.float32)[None] / 255.0, strength=1.0,
                num_inference_steps=1, generator=torch.Generator().manual_seed(SEED),
                callback_on_step_end=lambda p, i, t, k: k,
            )  # fmt: skip

    proc, url = start_server(work / "results", "--cache", str(work / "cache"))
    out: dict[str, Any] = {"benchmark": "live", "runs": args.runs}
    try:
        with Counting(url, name="bench-live") as client:
            client.run(edit(image), timeout=600)  # warm: the model loads on the first job
            bare()
            bare_s, served_s, added_s = [], [], []
            for n in range(args.runs):
                frame = image.copy()
                frame[n % SIDE] ^= 0xFF  # every edit changes the canvas: new bytes each time
                start = time.perf_counter()
                bare()
                bare_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                result = client.run(edit(frame))
                served_s.append(time.perf_counter() - start)
                # The same job's own inference, timed inside the server: what the path adds
                # around it, free of the two processes competing for the CPU.
                added_s.append(served_s[-1] - result.timings["run"])
            b, s = statistics.median(bare_s), statistics.median(served_s)
            out["edit_added_around_inference_ms"] = round(statistics.median(added_s) * 1000, 1)
            out["edit"] = f"tiny sd15 refine {SIDE}² 1 step, live, inputs by shared memory"
            out["bare_ms"], out["served_ms"] = round(b * 1000, 1), round(s * 1000, 1)
            out["edit_overhead_ms"] = round((s - b) * 1000, 1)
            out["shm_used"] = bool(client._refs and client._refs.shm)
            out["burst"] = {
                "evenly_in_1s": burst(client, image, spacing=0.05),
                "back_to_back": burst(client, image, spacing=0.0),
            }
            if client._refs is not None:
                client._refs.shm = False  # the socket path from here: inputs by hash
            client.run(edit(image, "hash"), timeout=600)
            client.run(edit(image, "hash"), timeout=600)
            out["repeat_by_hash_bytes"] = client.sent[-1]
            out["first_send_bytes"] = client.sent[-2]
        out["pass_set_2048"] = pass_set(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(out, indent=2))


def burst(client: Client, image: np.ndarray, spacing: float) -> dict[str, int]:
    """20 edits of one key; how many ended with a result (the others: superseded)."""
    jobs = []
    for n in range(20):
        frame = image.copy()
        frame[:, n] ^= 0x55
        job = edit(frame, key=f"burst-{spacing}")
        client.submit(job)
        jobs.append(job.id)
        if spacing:
            time.sleep(spacing)
    client.wait(jobs[-1], timeout=600)
    ended: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(ended) < 19 and time.monotonic() < deadline:
        for event in client.events():
            if getattr(event, "id", None) in jobs and event.TYPE in (
                "result",
                "cancelled",
                "error",
            ):
                ended[event.id] = event.TYPE  # type: ignore[union-attr]
        time.sleep(0.01)
    ran = 1 + sum(t == "result" for t in ended.values())
    return {
        "edits": 20,
        "results": ran,
        "superseded": sum(t == "cancelled" for t in ended.values()),
    }


def in_process(job: Any) -> dict[str, Any]:
    """The shared-memory mechanism alone, in this process: the client's encode into its
    (reused) segments and the server's decode out of them, against memcpy of the same bytes."""
    from sfumato.clientrefs import InputRefs
    from sfumato.protocol import Accepted, Welcome, decode_client_message
    from sfumato.service.inputrefs import ConnectionResolver, Probe

    probe = Probe()
    refs = InputRefs(Welcome("bench", 1, ("shm",), shm=probe.wire))
    resolver = ConnectionResolver(None, "bench", True)
    times: dict[str, list[float]] = {"client": [], "server": [], "memcpy": []}
    try:
        for _ in range(6):
            j = job()
            start = time.perf_counter()
            data = b"".join(encode(j, refs.place_for(j)))
            mid = time.perf_counter()
            decode_client_message(data, None, resolver)
            resolver.finish()
            end = time.perf_counter()
            refs.after(Accepted(j.id, 0), lambda *_: None)
            # … and its end: the client may reuse the segments (as the refused job's is)
            refs.after(Error(ErrorCode.UNKNOWN_MODEL, "refused", id=j.id), lambda *_: None)
            arrays = [j.image.to_numpy(), *(c.image.to_numpy() for c in j.controls)]
            copy_start = time.perf_counter()
            for a in arrays:
                np.array(a, copy=True)
            times["memcpy"].append(time.perf_counter() - copy_start)
            times["client"].append(mid - start)
            times["server"].append(end - mid)
    finally:
        refs.close()
        resolver.close()
        probe.close()
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # the first warms the pool
    return {
        "in_process_client_ms": round(med["client"] * 1000, 1),
        "in_process_server_ms": round(med["server"] * 1000, 1),
        "in_process_memcpy_ms": round(med["memcpy"] * 1000, 1),
        "in_process_x_memcpy": round((med["client"] + med["server"]) / med["memcpy"], 2),
    }


def pass_set(url: str) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    side = 2048
    depth = rng.random((side, side, 1), dtype=np.float32)
    normal = rng.random((side, side, 3), dtype=np.float32).astype(np.float16)
    rgba = rng.integers(0, 256, (side, side, 4), dtype=np.uint8)
    total = depth.nbytes + normal.nbytes + rgba.nbytes
    controls = (
        Control(ControlKind.DEPTH, Array.from_numpy(depth)),
        Control(ControlKind.NORMAL, Array.from_numpy(normal)),
    )

    def job() -> Any:  # refused after its inputs are read: the model does not exist
        return make_job(
            "refine", rgba, prompt="x", steps=2, strength=0.5, model="no-such-model",
            controls=controls,
        )  # fmt: skip

    def memcpy() -> None:
        for a in (depth, normal, rgba):
            np.copy(a)

    def send(client: Client) -> None:
        j = job()
        client.submit(j)
        while True:
            event = client.next_event(120)
            if getattr(event, "id", None) == j.id and isinstance(event, (Error, Result)):
                return

    figures: dict[str, Any] = {"bytes": total, **in_process(job)}
    samples: dict[str, list[float]] = {"memcpy": [], "shm": [], "socket": []}
    with Client(url) as by_shm, Client(url) as by_socket:
        by_socket._refs = None  # bytes on the socket, as a remote client sends them
        figures["shm_used"] = bool(by_shm._refs and by_shm._refs.shm) and shmem.AVAILABLE
        send(by_shm), send(by_socket)  # warm
        for _ in range(5):
            for name, fn in (
                ("memcpy", memcpy), ("shm", lambda: send(by_shm)), ("socket", lambda: send(by_socket)),
            ):  # fmt: skip
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    base = statistics.median(samples["memcpy"])
    for name in ("memcpy", "shm", "socket"):
        figures[f"{name}_ms"] = round(statistics.median(samples[name]) * 1000, 1)
    figures["shm_x_memcpy"] = round(statistics.median(samples["shm"]) / base, 2)
    figures["socket_x_memcpy"] = round(statistics.median(samples["socket"]) / base, 2)
    return figures


if __name__ == "__main__":
    main()
