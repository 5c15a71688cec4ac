"""A seeded generator of hostile frames, and a client that fires them at a real server and
counts what comes back (issue 17, item 6). Used by tests/server/test_fuzz.py (a few thousand
frames in CI) and benchmarks/reliability.py (100 000).

Every frame is a whole websocket message; what a server owes each one is exactly one direct
answer: ``welcome``/``models``/``accepted``/``cancelled``/``result``, or an ``error``. Events
of jobs it accepted along the way (``progress``, their terminal event) are counted apart, and
an ``internal`` error or a 1011 close is a server bug.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sfumato.client import DIRECT, make_job
from sfumato.protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    ListModels,
    Progress,
    Result,
    decode_server_message,
    encode,
)
from sfumato.protocol.messages import JOB_ID

TYPES = ("hello", "job", "cancel", "fetch", "models", "welcome", "result", "", "JOB", "job\x00")
FUZZ_LIMITS = {"max_image_side": 64, "max_steps": 4, "max_variants": 2, "max_queued_jobs": 4}


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack value: wrong types, edge numbers, control characters, nesting."""
    kind = rng.randrange(12 if depth < 4 else 8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 7, 64, 65, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1])
    if kind == 3:
        return rng.choice([0.0, -0.0, 0.5, 1e308, float("nan"), float("inf"), -float("inf")])
    if kind == 4:
        alphabet = "aZ09_-.\n\r\x1b[31m\x00é€😀 \t\\'\""
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 8, 70, 300])))
    if kind == 5:
        return rng.randbytes(rng.choice([0, 1, 16, 300]))
    if kind == 6:
        return rng.choice(["generate", "refine", "inpaint", "tiny-sd", "depth", "xy", "absent"])
    if kind == 7:
        return rng.randrange(-5, 600)
    if kind in (8, 9):
        return [junk(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {
        (junk(rng, 4) if rng.random() < 0.1 else rng.choice(KEYS)): junk(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


KEYS = (
    "v", "type", "id", "task", "params", "inputs", "image", "mask", "controls", "prompt",
    "width", "height", "steps", "seed", "strength", "variants", "model", "loras", "tile",
    "expand", "dtype", "shape", "offset", "client", "token", "client_id", "kind", "weight",
)  # fmt: skip


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def _base(rng: random.Random, job_id: str) -> list[memoryview]:
    """A valid message (its chunks); jobs name an absent model unless a mutation drops it."""
    kind = rng.randrange(6)
    if kind == 0:
        return encode(Cancel(job_id))
    if kind == 1:
        return encode(Fetch(job_id))
    if kind == 2:
        return encode(ListModels())
    if kind == 3:
        return encode(Hello("fuzz", "1"))  # a second hello: bad_field
    image = np.zeros((rng.choice([8, 16, 64]), rng.choice([8, 16, 64]), 3), np.uint8)
    task = rng.choice(["generate", "refine", "inpaint", "outpaint", "upscale"])
    mask = np.full(image.shape[:2], 255, np.uint8) if task == "inpaint" else None
    params: dict[str, Any] = {"prompt": "f", "steps": 2, "width": 64, "height": 64}
    if rng.random() < 0.9:
        params["model"] = "absent"
    try:
        job = make_job(task, None if task == "generate" else image, mask, id=job_id, **params)
    except Exception:  # the client refuses some combinations itself
        job = make_job("generate", id=job_id, **params)
    return encode(job)


def frame(rng: random.Random) -> bytes | str:
    """One hostile (or, now and then, valid) message."""
    job_id = "f" + uuid.UUID(int=rng.getrandbits(128)).hex[:20]
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 64))
    if kind == 1:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(40)))
    chunks = _base(rng, job_id)
    header = bytes(chunks[0])
    payload = b"".join(bytes(c) for c in chunks[1:])
    if kind == 2:  # truncated anywhere
        whole = header + payload
        return whole[: rng.randrange(len(whole))]
    if kind == 3:  # bytes flipped
        whole = bytearray(header + payload)
        for _ in range(rng.randrange(1, 6)):
            whole[rng.randrange(len(whole))] = rng.randrange(256)
        return bytes(whole)
    if kind == 4:  # nested deep in a field
        depth = rng.choice([31, 33, 200, 1000, 5000])
        deep = b"\x91" * depth + b"\xc0"
        key = rng.choice(["params", "inputs", "id", "x", "client"])
        return (
            b"\x84"
            + _pack("v")
            + _pack(1)
            + _pack("type")
            + _pack("job")
            + _pack("id")
            + _pack(job_id)
            + _pack(key)
            + deep
        )
    if kind == 5:  # a random map with a plausible type
        body: dict[str, Any] = {
            "v": rng.choice([1, 1, 1, 2, "1", True, 1.0]),
            "type": rng.choice(TYPES),
        }
        if rng.random() < 0.8:
            body["id"] = job_id
        for _ in range(rng.randrange(6)):
            body[rng.choice(KEYS)] = junk(rng)
        body["id"] = _fresh(body.get("id", job_id) if rng.random() < 0.9 else junk(rng), job_id)
        return _pack(body) + rng.randbytes(rng.choice([0, 0, 10]))
    # kinds 6–9: one field of a valid header changed, removed or added
    fields = msgpack.unpackb(header, raw=False)
    target = fields
    path = [k for k in fields if k not in ("v", "type")]
    if "params" in fields and rng.random() < 0.6:
        target, path = fields["params"], list(fields["params"])
    if not path or rng.random() < 0.2:
        target[rng.choice(KEYS)] = junk(rng)
    else:
        key = rng.choice(path)
        if rng.random() < 0.3:
            del target[key]
        else:
            target[key] = junk(rng)
    fields["id"] = _fresh(fields.get("id", job_id), job_id)
    return _pack(fields) + payload


def _fresh(value: Any, job_id: str) -> Any:
    """Ids are never reused: a valid id other than the frame's own is swapped for it, so an
    answer can always be told from the events of a job accepted earlier."""
    if isinstance(value, str) and JOB_ID.match(value) and value != job_id:
        return job_id
    return value


def frames(seed: int, count: int) -> Iterator[bytes | str]:
    rng = random.Random(seed)
    for _ in range(count):
        yield frame(rng)


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0  # direct answers
    accepted: int = 0
    job_events: int = 0  # progress and terminal events of accepted jobs
    internal: int = 0
    closed_1011: int = 0
    unexpected_closes: int = 0
    connections: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    internal_messages: list[str] = field(default_factory=list)

    @property
    def unanswered(self) -> int:
        return self.sent - self.answered


def fire(
    url: str,
    seed: int,
    count: int,
    per_connection: int = 500,
    window: int = 32,
    timeout: float = 30.0,
) -> Tally:
    """Send ``count`` frames over connections of ``per_connection`` each (a fresh identity
    each, hello first), at most ``window`` unanswered at a time, and tally the answers."""
    tally = Tally()
    source = frames(seed, count)
    left = count
    while left:
        batch = min(left, per_connection)
        _one_connection(url, source, batch, window, timeout, tally)
        left -= batch
    return tally


def _one_connection(
    url: str,
    source: Iterator[bytes | str],
    batch: int,
    window: int,
    timeout: float,
    tally: Tally,
) -> None:
    ws = connect(url, compression=None, max_size=None, open_timeout=30, **DIRECT)
    tally.connections += 1
    ws.send(b"".join(encode(Hello("fuzz", "1", client_id=uuid.uuid4().hex))))
    first = decode_server_message(ws.recv(timeout=timeout))
    assert first.TYPE == "welcome", first
    room = threading.Semaphore(window)
    accepted: set[str] = set()  # this identity's jobs that have not ended yet
    sent, answered = [0], [0]
    sending = threading.Event()
    sending.set()

    def read() -> None:
        quiet_since = time.monotonic()
        try:
            while sending.is_set() or answered[0] < sent[0]:
                try:
                    message = decode_server_message(ws.recv(timeout=0.2))
                except TimeoutError:
                    if time.monotonic() - quiet_since > timeout:
                        return  # what is still missing stays unanswered
                    continue
                quiet_since = time.monotonic()
                job_id = getattr(message, "id", None)
                if isinstance(message, Progress):
                    tally.job_events += 1
                    continue
                if job_id in accepted and (
                    isinstance(message, (Result, Cancelled))
                    or (isinstance(message, Error) and message.code in TERMINAL_CODES)
                ):
                    accepted.discard(job_id)  # the one terminal event of an accepted job
                    tally.job_events += 1
                    if isinstance(message, Error) and message.code is ErrorCode.INTERNAL:
                        tally.internal += 1
                        tally.internal_messages.append(message.message[:300])
                    continue
                if isinstance(message, Accepted) and job_id not in accepted:
                    accepted.add(message.id)
                    tally.accepted += 1
                if isinstance(message, Error):
                    tally.codes[message.code.value] = tally.codes.get(message.code.value, 0) + 1
                    if message.code is ErrorCode.INTERNAL:
                        tally.internal += 1
                        tally.internal_messages.append(message.message[:300])
                answered[0] += 1
                room.release()
        except ConnectionClosed as exc:
            tally.unexpected_closes += 1
            if exc.rcvd is not None and exc.rcvd.code == 1011:
                tally.closed_1011 += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for _ in range(batch):
            if not room.acquire(timeout=timeout) or not reader.is_alive():
                break
            ws.send(next(source))
            sent[0] += 1
    except ConnectionClosed:
        pass
    finally:
        sending.clear()
        reader.join(timeout + 5)
        tally.sent += sent[0]
        tally.answered += answered[0]
        ws.close()


# What ends an accepted job (besides result and cancelled); never a direct answer to a frame.
TERMINAL_CODES = frozenset(
    {
        ErrorCode.JOB_FAILED, ErrorCode.UNSUPPORTED, ErrorCode.MODEL_UNAVAILABLE,
        ErrorCode.UNKNOWN_MODEL, ErrorCode.STORE_FAILED, ErrorCode.ENGINE_UNAVAILABLE,
        ErrorCode.INTERRUPTED, ErrorCode.INTERNAL,
        ErrorCode.RESULT_TOO_LARGE,  # a result that outgrew max_message_bytes (outbox.too_large)
    }
)  # fmt: skip
