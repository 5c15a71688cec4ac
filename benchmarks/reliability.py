"""Reliability figures for ``sfumato serve`` (issue 17), each against a real server on loopback
with its default resource limits (the fuzz server also caps jobs at 64² and 4 steps, so the few
fuzzed jobs that are valid stay cheap). Prints JSON.

- ``fuzz``: --frames seeded hostile frames (tests/server/fuzzframes.py) over connections of
  500: answered / unanswered, internal errors, 1011 closes, the server's RSS, a canary job;
- ``jobs``: --clients clients × --jobs jobs each (tiny model, 64², 2 steps) at once: results,
  lost, duplicated;
- ``idle``: --idle connections that never say hello (closed by hello_timeout), then --idle
  that do (up to max_connections; the rest refused): descriptors and RSS;
- ``big``: three messages of --big-mib at once (over max_message_bytes: frame_too_large) and
  three of 250 MiB (under it: unknown_model or server_busy): the server's peak RSS growth;
- ``unread``: a client that fetches a 512² result --unread times and never reads: the
  server's RSS growth and whether it was closed.

    .venv/bin/python benchmarks/reliability.py            # all of it (several minutes)
    .venv/bin/python benchmarks/reliability.py --frames 20000 --skip big
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.fuzzframes import FUZZ_LIMITS, Tally, fire  # noqa: E402
from tests.server.limited import Limited, limited_server, plant  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from sfumato.client import DIRECT, Client, make_job  # noqa: E402
from sfumato.protocol import (  # noqa: E402
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Result,
    decode_server_message,
    encode,
    encode_bytes,
    fragments,
)

MIB = 1024 * 1024


class Peak:
    """Samples a server's RSS every 5 ms while in use."""

    def __init__(self, server: Limited) -> None:
        self.server, self.before, self.peak = server, server.rss(), server.rss()
        self._on = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._on:
            try:
                self.peak = max(self.peak, self.server.rss())
            except (OSError, AssertionError):
                return
            time.sleep(0.005)

    def stop(self) -> dict[str, float]:
        self._on = False
        self._thread.join()
        return {
            "rss_before_mib": round(self.before / MIB, 1),
            "rss_peak_mib": round(self.peak / MIB, 1),
            "rss_after_mib": round(self.server.rss() / MIB, 1),
        }


def canary(url: str) -> bool:
    with Client(url, name="canary") as client:
        job = make_job("generate", prompt="canary", seed=3, width=64, height=64, steps=2)
        return isinstance(client.run(job, timeout=1800), Result)


def fuzz(work: Path, cache: Path, frames: int) -> dict[str, Any]:
    """In slices of 10 000 frames (seeds 1, 2, …), the server's RSS after each: flat once the
    first valid fuzzed job has loaded the engine (torch, the tiny model)."""
    with limited_server(work / "fuzz", cache, {}, FUZZ_LIMITS) as server:
        started = time.monotonic()
        total = Tally()
        rss_after_slice = []
        left, seed = frames, 1
        while left:
            tally = fire(server.url, seed, min(left, 10_000), per_connection=500)
            for key in ("sent", "answered", "accepted", "internal", "closed_1011",
                        "unexpected_closes", "connections"):  # fmt: skip
                setattr(total, key, getattr(total, key) + getattr(tally, key))
            for code, n in tally.codes.items():
                total.codes[code] = total.codes.get(code, 0) + n
            left -= min(left, 10_000)
            seed += 1
            rss_after_slice.append(round(server.rss() / MIB, 1))
        seconds = time.monotonic() - started
        ok = canary(server.url)
        log = server.log_text()
        return {
            "frames": total.sent, "answered": total.answered, "unanswered": total.unanswered,
            "internal_errors": total.internal, "closed_1011": total.closed_1011,
            "unexpected_closes": total.unexpected_closes, "connections": total.connections,
            "accepted_jobs": total.accepted, "frames_per_s": round(total.sent / seconds),
            "server_alive": server.alive(), "canary_ok": ok,
            "tracebacks_in_log": log.count("Traceback"), "log_bytes": len(log.encode()),
            "rss_mib_after_each_10k": rss_after_slice, "codes": dict(sorted(total.codes.items())),
        }  # fmt: skip


def jobs(work: Path, cache: Path, clients: int, per_client: int) -> dict[str, Any]:
    with limited_server(work / "jobs", cache) as server:
        canary(server.url)  # load the model first: the figure is about delivery, not loading
        received: dict[str, int] = {}
        errors: list[str] = []
        lock = threading.Lock()
        submitted: list[str] = []

        def client(n: int) -> None:
            try:
                with Client(server.url, name=f"load-{n}") as c:
                    mine = [
                        make_job("generate", prompt=f"{n}-{i}", seed=i, width=64, height=64,
                                 steps=2)
                        for i in range(per_client)
                    ]  # fmt: skip
                    with lock:
                        submitted.extend(j.id for j in mine)
                    pending = {j.id for j in mine}
                    window = 4  # in flight per client, under max_queued_jobs
                    queue = list(mine)
                    for j in queue[:window]:
                        c.submit(j)
                    sent = window
                    deadline = time.monotonic() + 1800
                    while pending and time.monotonic() < deadline:
                        event = c.next_event(timeout=60)
                        job_id = getattr(event, "id", None)
                        if isinstance(event, Result) or (isinstance(event, Error) and job_id):
                            with lock:
                                received[job_id] = received.get(job_id, 0) + 1
                                if isinstance(event, Error):
                                    errors.append(f"{event.code.value}: {event.message[:100]}")
                            pending.discard(job_id)
                            if sent < len(queue):
                                c.submit(queue[sent])
                                sent += 1
            except Exception as exc:  # reported in the figures
                with lock:
                    errors.append(f"client {n}: {type(exc).__name__}: {exc}")

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {
            "clients": clients, "jobs_each": per_client, "submitted": len(submitted),
            "results": sum(received.values()),
            "lost": sum(1 for j in submitted if j not in received),
            "duplicated": sum(n - 1 for n in received.values() if n > 1),
            "errors": errors[:5], "seconds": round(time.monotonic() - started, 1),
        }  # fmt: skip


def idle(work: Path, cache: Path, count: int) -> dict[str, Any]:
    with limited_server(work / "idle", cache) as server:
        base_fds, base_rss = server.descriptors(), server.rss()
        silent = [connect(server.url, compression=None, **DIRECT) for _ in range(count)]
        time.sleep(0.5)
        silent_fds = server.descriptors()
        deadline = time.monotonic() + 30
        while server.descriptors() > base_fds + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        after_timeout = server.descriptors()
        for ws in silent:
            ws.close()
        served = refused = 0
        talkers = []
        for _ in range(count):
            ws = connect(server.url, compression=None, max_size=None, **DIRECT)
            talkers.append(ws)
            try:  # past max_connections the server refuses before hello: error, close 1013
                ws.send(encode_bytes(Hello("idle", "1")))
                first = decode_server_message(ws.recv(timeout=30))
            except ConnectionClosed as exc:
                refused += exc.rcvd is not None and exc.rcvd.code == 1013
                continue
            if first.TYPE == "welcome":
                served += 1
            elif getattr(first, "code", None) is ErrorCode.TOO_MANY_CONNECTIONS:
                refused += 1
        time.sleep(0.5)
        figures = {
            "connections": count,
            "descriptors_baseline": base_fds,
            "descriptors_with_silent": silent_fds,
            "descriptors_after_hello_timeout": after_timeout,
            "hello_connections_served": served,
            "hello_connections_refused": refused,
            "descriptors_with_idle": server.descriptors(),
            "rss_baseline_mib": round(base_rss / MIB, 1),
            "rss_with_idle_mib": round(server.rss() / MIB, 1),
        }
        for ws in talkers:
            ws.close()
        return figures


def big(work: Path, cache: Path, big_mib: int) -> dict[str, Any]:
    """Three messages at once of a small job header plus raw payload bytes: the server reads
    each (or drops it as it arrives, past max_message_bytes) before it can answer."""
    with limited_server(work / "big", cache) as server:
        out: dict[str, Any] = {}
        for name, mib in (("over_limit", big_mib), ("under_limit", 250)):
            payload = memoryview(np.zeros(mib * MIB, np.uint8))
            answers: list[str] = []
            peak = Peak(server)

            def send(answers: list[str] = answers, payload: memoryview = payload) -> None:
                try:
                    with connect(server.url, compression=None, max_size=None, **DIRECT) as ws:
                        ws.send(encode_bytes(Hello("big", "1")))
                        ws.recv(timeout=60)
                        job = make_job("generate", prompt="x", model="absent")
                        ws.send(fragments([*encode(job), payload]))
                        answer = decode_server_message(ws.recv(timeout=300))
                        answers.append(getattr(answer, "code", answer).value)
                except Exception as exc:
                    answers.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=send) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            memory = peak.stop()
            out[name] = {"message_mib": mib, "at_once": 3, "answers": sorted(answers), **memory}
            out[name]["rss_growth_mib"] = round(
                memory["rss_peak_mib"] - memory["rss_before_mib"], 1
            )
        out["server_alive"] = server.alive()
        return out


def unread(work: Path, cache: Path, fetches: int) -> dict[str, Any]:
    with limited_server(work / "unread", cache) as server:
        plant(server.results, "unread", "big", side=512)
        ws = connect(server.url, compression=None, max_size=None, max_queue=1, **DIRECT)
        ws.send(encode_bytes(Hello("unread", "1", client_id="unread")))
        ws.recv(timeout=30)
        peak = Peak(server)
        for _ in range(fetches):
            ws.send(encode_bytes(Fetch("big")))
        time.sleep(10)
        memory = peak.stop()
        got, closed = 0, False
        try:
            while True:
                message = decode_server_message(ws.recv(timeout=30))
                got += isinstance(message, Result)
        except ConnectionClosed:
            closed = True
        except TimeoutError:
            pass
        with Client(server.url, name="again", client_id="unread") as again:
            again.fetch("big")
            still = isinstance(again.wait("big", timeout=60), Result)
        return {
            "fetches": fetches, "answer_mib_each": round(512 * 512 * 3 / MIB, 2),
            "results_received_before_close": got, "closed_by_server": closed,
            "result_still_fetchable": still, **memory,
            "rss_growth_mib": round(memory["rss_peak_mib"] - memory["rss_before_mib"], 1),
        }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=25)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--big-mib", type=int, default=500)
    parser.add_argument("--unread", type=int, default=300)
    parser.add_argument("--skip", action="append", default=[], help="a part to leave out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sfumato-reliability-"))
    cache = work / "cache"
    figures: dict[str, Any] = {"run": uuid.uuid4().hex[:8]}
    parts = {
        "fuzz": lambda: fuzz(work, cache, args.frames),
        "jobs": lambda: jobs(work, cache, args.clients, args.jobs),
        "idle": lambda: idle(work, cache, args.idle),
        "big": lambda: big(work, cache, args.big_mib),
        "unread": lambda: unread(work, cache, args.unread),
    }
    for name, part in parts.items():
        if name not in args.skip:
            started = time.monotonic()
            figures[name] = part()
            figures[name]["part_seconds"] = round(time.monotonic() - started, 1)
            print(json.dumps({name: figures[name]}), file=sys.stderr, flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
