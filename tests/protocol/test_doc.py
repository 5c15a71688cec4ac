"""docs/protocol.md is normative: its worked example's bytes and its tables' field order are
read from the document itself and compared with the encoder, so the two cannot drift apart
(issue 9.20: the doc claimed table order while its example showed the encoder's)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from sfumato.protocol import (
    SUPERSEDED,
    Accepted,
    Array,
    Cancel,
    Cancelled,
    Control,
    ControlKind,
    Coverage,
    DType,
    Error,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    JobParams,
    Limits,
    LoraRef,
    Message,
    ModelInfo,
    Models,
    MultiviewInputs,
    Paint,
    Progress,
    Result,
    ShmProbe,
    SystemInfo,
    Task,
    Tile,
    Trained,
    TrainParams,
    View,
    Welcome,
    encode,
    encode_bytes,
)

from .test_codec import GOLDEN

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
HEX = re.compile(r"[0-9a-f]{2}(?:[0-9a-f]{2})*\Z")


def section(heading: str) -> str:
    """The text from ``heading`` (a whole line) to the next heading of any level."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#)", DOC + "\n#", re.M | re.S)
    assert match, f"docs/protocol.md has no heading {heading!r}"
    return match.group(1)


def first_column(text: str) -> list[str]:
    """The first column of the first table in ``text``, backticks removed."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "no table"
    block = []
    start = text.splitlines().index(rows[0])
    for line in text.splitlines()[start:]:
        if not line.startswith("|"):
            break
        block.append(line)
    return [row.split("|")[1].strip().strip("`") for row in block[2:]]


def keys(message: Message, *path: str | int) -> list[str]:
    header = msgpack.unpackb(bytes(encode(message)[0]), raw=False)
    node: Any = header
    for step in path:
        node = node[step]
    return [k for k in node if not (node is header and k in ("v", "type"))]


def example_bytes() -> bytes:
    """The hex bytes of section 10's annotated dump: every line's leading hex tokens."""
    block = section("## 10. Worked example").split("```")[1]
    out = bytearray()
    for line in block.splitlines():
        for token in line.split():
            if not HEX.match(token):
                break
            out += bytes.fromhex(token)
    return bytes(out)


def test_worked_example_is_the_encoders_bytes() -> None:
    message, header_hex, _ = GOLDEN["job"]
    wire = encode_bytes(message)
    assert example_bytes() == wire
    counts = re.search(r"(\d+) bytes: a (\d+)-byte header\s+and a (\d+)-byte payload", DOC)
    assert counts, "section 10 states the sizes"
    total, header, payload = map(int, counts.groups())
    assert (total, header, payload) == (
        len(wire),
        len(bytes.fromhex(header_hex)),
        len(wire) - header,
    )
    assert f"byte {header} = 0x{header:x}" in DOC


IMAGE = Array(DType.UINT8, (1, 1, 3), b"\0\0\0")
DEPTH = Array(DType.FLOAT32, (1, 1, 1), b"\0\0\x80\x3f")
MASK = Array(DType.UINT8, (1, 1, 1), b"\0")
FULL_PARAMS = JobParams(
    prompt="p", negative="n", width=64, height=64, steps=4, guidance=5.0, seed=7,
    strength=0.5, variants=2, model="m", loras=(LoraRef("l", 0.5),), tile=Tile.XY,
    preview_every=2, expand=(8, 0, 8, 0), scale=3, files=True, paint=Paint.POSITION,
    bounds=(0, 0, 0, 1, 1, 1), train=TrainParams("d", "n", 4, 4, 10, 1e-4, 64, 5),
    live=True, live_key="k",
)  # fmt: skip
FULL_CONTROL = Control(ControlKind.DEPTH, DEPTH, MASK, 0.5, 0.1, 0.9, False)
FULL_JOB = Job("j", Task.OUTPAINT, FULL_PARAMS, IMAGE, None, (FULL_CONTROL,))
MODEL = ModelInfo("m", "sd15", "base")
IDENTITY = (1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
UV = Array(DType.FLOAT32, (1, 1, 2), bytes(8))
NORMAL = Array(DType.FLOAT32, (1, 1, 3), bytes(12))
VIEW = View(DEPTH, NORMAL, UV, MASK, IDENTITY, IDENTITY)
MULTIVIEW_JOB = Job(
    "j", Task.MULTIVIEW, JobParams(), multiview=MultiviewInputs((VIEW,), NORMAL, NORMAL, MASK)
)
MULTIVIEW_RESULT = Result(
    "j", Task.MULTIVIEW, (IMAGE,), (1,), "m", coverage=Coverage(0.5, (0.25, 0.25))
)
MULTIVIEW = "#### 4.2.4 Multi-view texturing (capability `multiview`)"
TRAIN = "#### 4.2.5 LoRA training (capability `train`)"
TRAIN_JOB = Job("j", Task.TRAIN, JobParams(train=TrainParams("d", "n", 4, 4, 10, 1e-4, 64, 5)))
TRAIN_RESULT = Result(
    "j", Task.TRAIN, (), (1,), "m", trained=Trained("n", "a" * 64, "b" * 64, "CC0-1.0", 10, 0.1)
)
FULL_WELCOME = Welcome(
    "0.1", 1, ("generate",), (MODEL,), "m", Limits(), "c", "n", False, "s",
    SystemInfo("cpu", 0, "2.5.1", 3, 1, ("w",)), 1024, ShmProbe("sfumato-probe-1-00", "ab"),
)  # fmt: skip

# (heading, message, path to the map inside its header); the table's first column lists the
# map's keys in the encoder's order.
TABLES: list[tuple[str, Message, tuple[str | int, ...]]] = [
    ("### 4.1 `hello`", Hello("krita", "1", token="t", client_id="c"), ()),
    ("### 4.2 `job`", FULL_JOB, ()),
    ("#### 4.2.1 `params`", FULL_JOB, ("params",)),
    ("### 4.3 `cancel`", Cancel("j"), ()),
    ("### 4.4 `fetch`", Fetch("j"), ()),
    ("### 5.1 `welcome`", Welcome("0.1", 1, ("generate",), (MODEL,), "m", Limits(), "c", "n"), ()),
    ("### 5.1 `welcome`", FULL_WELCOME, ()),
    ("#### 5.1.1 `system`", FULL_WELCOME, ("system",)),
    ("### 5.2 `models`", Models((MODEL,), "m"), ()),
    ("### 5.3 `accepted`", Accepted("j", 1), ()),
    ("### 5.4 `progress`", Progress("j", 1, 4, "denoise", IMAGE), ()),
    ("### 5.5 `result`", Result("j", Task.REFINE, (IMAGE,), (1,), "m", True, "p", {"run": 1.0}, (b"x",)), ()),
    ("### 5.6 `error`", Error(ErrorCode.BAD_FIELD, "m", "j", "params.width"), ()),
    ("### 5.7 `cancelled`", Cancelled("j"), ()),
    ("### 5.7 `cancelled`", Cancelled("j", SUPERSEDED), ()),
    ("### 5.5 `result`", MULTIVIEW_RESULT, ()),
    ("#### 5.5.1 `coverage`", MULTIVIEW_RESULT, ("coverage",)),
    (MULTIVIEW, MULTIVIEW_JOB, ("inputs",)),
    ("### 5.4 `progress`", Progress("j", 1, 4, "train", loss=0.5), ()),
    ("### 5.5 `result`", TRAIN_RESULT, ()),
    (TRAIN, TRAIN_JOB, ("params", "train")),
    ("#### 5.5.2 `trained`", TRAIN_RESULT, ("trained",)),
]  # fmt: skip


@pytest.mark.parametrize(("heading", "message", "path"), TABLES, ids=[t[0] for t in TABLES])
def test_each_table_lists_the_fields_in_the_encoders_order(
    heading: str, message: Message, path: tuple[str | int, ...]
) -> None:
    documented = first_column(section(heading))
    written = keys(message, *path)
    assert not set(written) - set(documented), f"{heading}: undocumented fields"
    assert [k for k in documented if k in written] == written, f"{heading}: order differs"


def test_params_and_controls_tables_are_complete() -> None:
    """A job with every optional field set writes exactly the documented keys, in order."""
    assert first_column(section("#### 4.2.1 `params`")) == keys(FULL_JOB, "params")
    controls = section(
        "#### 4.2.3 Conditioning (capabilities `control`, `lora`, `tile`, `preview`, `outpaint`, "
        "`upscale`)"
    )
    table = controls[controls.index("**Controls**") :]
    assert first_column(table) == keys(FULL_JOB, "inputs", "controls", 0)


def test_multiview_tables_are_complete() -> None:
    """The multiview inputs and each view's fields, exactly as the encoder writes them."""
    text = section(MULTIVIEW)
    assert first_column(text) == keys(MULTIVIEW_JOB, "inputs")
    views = text[text.index("Each view") :]
    assert first_column(views) == keys(MULTIVIEW_JOB, "inputs", "views", 0)
    assert first_column(section("#### 5.5.1 `coverage`")) == keys(MULTIVIEW_RESULT, "coverage")


def test_train_tables_are_complete() -> None:
    """params.train and result.trained with every field set write exactly the documented keys."""
    assert first_column(section(TRAIN)) == keys(TRAIN_JOB, "params", "train")
    assert first_column(section("#### 5.5.2 `trained`")) == keys(TRAIN_RESULT, "trained")


def test_limits_table_is_the_wire_order() -> None:
    documented = first_column(section("## 7. Limits"))
    assert documented == list(Limits().to_wire())
