"""Issue 9 item 2, Krita's pure half: every seed the protocol allows (0 … 2**32 − 1) goes
through the plugin losslessly — settings → job → wire bytes, result → layer names → history
JSON (what the .kra annotation stores) — and anything else is refused with the range. The
Seed widget and the .kra round trip are checked in real Krita (test_gui.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from sfumato_krita.jobs import (
    SEED_MAX,
    CanvasInput,
    Mode,
    PluginError,
    Rect,
    Request,
    build_job,
    check_seed,
    history_entry,
    layer_name,
    placement_for,
)
from sfumato_krita.model import JobState, Session, Settings

from sfumato.client import Connected
from sfumato.protocol import (
    Array,
    DType,
    Result,
    Task,
    Welcome,
    decode_client_message,
    encode_bytes,
)

CAPS = ("generate", "refine", "inpaint", "variants", "cancel")
SEEDS = st.integers(min_value=0, max_value=SEED_MAX)
EDGES = st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 2, SEED_MAX])
ANY_SEED = st.one_of(SEEDS, EDGES)
INPUT = CanvasInput(64, 64, Rect(0, 0, 64, 64), None, None)


def rgb(h: int, w: int) -> Array:
    return Array(DType.UINT8, (h, w, 3), bytes(h * w * 3))


@given(seed=ANY_SEED, variants=st.integers(1, 4))
def test_a_seed_reaches_the_wire_unchanged(seed: int, variants: int) -> None:
    request = Settings(seed=seed, variants=variants).request()
    assert request.seed == seed
    job = build_job(request, INPUT, CAPS, "j1", 1024)
    again = decode_client_message(encode_bytes(job))
    assert again == job and again.params.seed == seed


@given(seed=ANY_SEED, variants=st.integers(1, 4), prompt=st.text(max_size=60))
def test_result_seeds_survive_layer_names_and_the_history(
    seed: int, variants: int, prompt: str
) -> None:
    """The server's seeds (wrapping at 2**32: protocol.md) name the layers and go into the
    history the document keeps as JSON."""
    seeds = tuple((seed + n) % 2**32 for n in range(variants))
    request = Request(Mode.GENERATE, prompt, seed=seed, variants=variants)
    result = Result("j1", Task.GENERATE, tuple(rgb(64, 64) for _ in seeds), seeds, "tiny-sd")
    job = build_job(request, INPUT, CAPS, "j1")
    placement = placement_for(job, request, INPUT, result)
    names = [layer.name for layer in placement.layers]
    assert names == [layer_name(prompt, s, Mode.GENERATE) for s in seeds]
    assert [int(name.rsplit("seed ", 1)[1]) for name in names] == list(seeds)
    entry = history_entry(job, request, INPUT, result, names)
    stored = json.loads(json.dumps([entry], ensure_ascii=False).encode("utf-8"))  # canvas.py
    assert stored[0]["seeds"] == list(seeds) and stored[0]["layers"] == names


@given(seed=ANY_SEED)
def test_the_session_lands_a_result_with_any_seed(seed: int) -> None:
    session = Session(Settings(seed=seed))
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    job = session.start_job(INPUT)
    assert job.params.seed == seed
    session.handle(Result(job.id, Task.GENERATE, (rgb(64, 64),), (seed,), "tiny-sd"))
    record = session.jobs[job.id]
    assert record.state is JobState.DONE and record.purpose.layers == [f"generate · seed {seed}"]


@given(
    bad=st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=2**32),
        st.booleans(),
        st.floats(allow_nan=True),
        st.text(max_size=5),
    )
)
def test_a_seed_outside_the_protocol_is_refused_with_the_range(bad: object) -> None:
    with pytest.raises(PluginError, match="from 0 to 4294967295"):
        check_seed(bad)  # type: ignore[arg-type]
    session = Session(Settings(seed=bad))  # type: ignore[arg-type]
    session.handle(Connected(Welcome("0.1", 1, CAPS)))
    with pytest.raises(PluginError, match="random"):
        session.start_job(INPUT)
    assert session.jobs == {} and "4294967295" in session.message  # nothing was started
