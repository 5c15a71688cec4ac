"""Hypothesis strategies for protocol v1: every message type, valid by construction.

Valid means "what a correct peer may send": decoding the encoded form must give the same
message back. Sizes stay small so that each property runs in well under a second.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sfumato.protocol import (
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
    ListModels,
    LoraRef,
    ModelInfo,
    Models,
    MultiviewInputs,
    Paint,
    Progress,
    Result,
    SystemInfo,
    Task,
    Tile,
    View,
    Welcome,
)
from sfumato.protocol.messages import SEED_MAX, denoising_steps, min_strength
from sfumato.protocol.training import Trained, TrainParams

# Properties run many times in a suite that must stay fast; no deadline, as the first example
# pays for imports and a loaded CI box is not a failure.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LIMITS = Limits()
INT31 = 2**31

job_ids = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", fullmatch=True)
# Prompts are where users type: any Unicode text (hypothesis never generates lone surrogates,
# which msgpack could not encode as UTF-8 anyway).
texts = st.text(max_size=40)
names = st.text(max_size=200)


def shapes(
    channels: tuple[int, ...] = (1, 2, 3, 4), side: int = 6
) -> st.SearchStrategy[tuple[int, int, int]]:
    return st.tuples(st.integers(1, side), st.integers(1, side), st.sampled_from(channels))


@st.composite
def arrays(
    draw: st.DrawFn,
    dtypes: tuple[DType, ...] = tuple(DType),
    channels: tuple[int, ...] = (1, 2, 3, 4),
    shape: tuple[int, int, int] | None = None,
) -> Array:
    dtype = draw(st.sampled_from(dtypes))
    if shape is None:
        shape = draw(shapes(channels))
    h, w, c = shape
    data = draw(st.binary(min_size=h * w * c * dtype.itemsize, max_size=h * w * c * dtype.itemsize))
    return Array(dtype, shape, data)


sizes = st.integers(8, LIMITS.max_image_side // 8).map(lambda n: n * 8)  # 64 … 4096
unit = st.floats(0.0, 1.0, allow_nan=False)

job_params = st.builds(
    JobParams,
    prompt=texts,
    negative=texts,
    width=sizes,
    height=sizes,
    steps=st.integers(1, LIMITS.max_steps),
    guidance=st.floats(0.0, 50.0, allow_nan=False),
    seed=st.none() | st.integers(0, SEED_MAX),
    strength=unit,
    variants=st.integers(1, LIMITS.max_variants),
    model=st.none() | names,
    loras=st.lists(
        st.builds(LoraRef, name=names, weight=st.floats(-4.0, 4.0, allow_nan=False)),
        max_size=3,
        unique_by=lambda lora: lora.name,
    ).map(tuple),
    tile=st.sampled_from(Tile),
    preview_every=st.integers(0, 10),
    expand=st.tuples(*[st.integers(0, 64)] * 4),
    scale=st.integers(2, 4),
    files=st.booleans(),
)


@st.composite
def controls(draw: st.DrawFn) -> Control:
    kind = draw(st.sampled_from(ControlKind))
    raw = kind in (ControlKind.DEPTH, ControlKind.NORMAL) and draw(st.booleans())
    if raw:
        channels = (1,) if kind is ControlKind.DEPTH else (3,)
        image = draw(arrays(dtypes=(DType.FLOAT32, DType.FLOAT16), channels=channels))
    else:
        image = draw(arrays(dtypes=(DType.UINT8,), channels=(1, 3, 4)))
    mask = None
    if raw and kind is ControlKind.DEPTH and draw(st.booleans()):
        mask = draw(arrays(dtypes=(DType.UINT8,), shape=(image.height, image.width, 1)))
    start = draw(st.floats(0.0, 0.5, allow_nan=False))
    end = draw(st.floats(0.6, 1.0, allow_nan=False))
    strength = draw(st.floats(0.0, 2.0, allow_nan=False))
    return Control(
        kind, image, mask, strength, start, end, preprocess=not raw and draw(st.booleans())
    )


def filled(dtype: DType, shape: tuple[int, int, int], seed: int) -> Array:
    """An array of pseudo-random bytes (any bit pattern is valid on the wire)."""
    h, w, c = shape
    return Array(dtype, shape, random.Random(seed).randbytes(h * w * c * dtype.itemsize))


finite = st.floats(-1e6, 1e6, allow_nan=False)
matrices = st.tuples(*[finite] * 16)
projections = st.tuples(*[finite] * 12, finite.filter(lambda v: v != 0), *[finite] * 3)


@st.composite
def multiview_inputs(draw: st.DrawFn, width: int, height: int) -> MultiviewInputs:
    seed = draw(st.integers(0, 2**32))
    views = []
    for n in range(draw(st.integers(1, 3))):
        passes = [
            filled(DType.FLOAT32, (height, width, 1), seed + 4 * n),
            filled(DType.FLOAT32, (height, width, 3), seed + 4 * n + 1),
            filled(DType.FLOAT32, (height, width, 2), seed + 4 * n + 2),
            filled(DType.UINT8, (height, width, 1), seed + 4 * n + 3),
        ]
        views.append(View(*passes, draw(matrices), draw(projections)))
    th, tw = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    return MultiviewInputs(
        tuple(views),
        filled(DType.FLOAT32, (th, tw, 3), seed - 1),
        filled(DType.FLOAT32, (th, tw, 3), seed - 2),
        filled(DType.UINT8, (th, tw, 1), seed - 3),
    )


bounds = st.tuples(*[st.floats(-1e3, 1e3)] * 3, *[st.floats(1e3 + 1, 1e4)] * 3)


@st.composite
def multiview_jobs(draw: st.DrawFn) -> Job:
    params = replace(
        draw(job_params),
        width=64,
        height=64,
        variants=1,
        tile=Tile.NONE,
        paint=draw(st.sampled_from(Paint)),
        bounds=draw(st.just(()) | bounds),
    )
    if denoising_steps(params.steps, params.strength) < 1:
        params = replace(params, strength=min_strength(params.steps))
    inputs = draw(multiview_inputs(params.width, params.height))
    return Job(draw(job_ids), Task.MULTIVIEW, params, multiview=inputs)


registry_names = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
optional = st.none() | st.integers(1, 1024)
train_params = st.builds(
    TrainParams, registry_names, registry_names, optional, optional, st.none() | st.integers(1, 100_000),
    st.none() | st.floats(1e-8, 1.0), st.none() | st.integers(1, 512).map(lambda n: n * 8), optional,
)  # fmt: skip


trained = st.builds(
    Trained, names, texts, texts, texts, st.integers(0, 2**31), st.floats(0.0, 1e6), st.booleans()
)


@st.composite
def train_jobs(draw: st.DrawFn) -> Job:
    """Task train (docs/protocol.md 4.2.5): params.train, the base and a seed; no inputs."""
    params = replace(draw(job_params), loras=(), train=draw(train_params))
    return Job(draw(job_ids), Task.TRAIN, params)


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    task = draw(st.sampled_from(Task))
    if task is Task.MULTIVIEW:
        return draw(multiview_jobs())
    if task is Task.TRAIN:
        return draw(train_jobs())
    image = mask = None
    if task is not Task.GENERATE:
        image = draw(arrays(dtypes=(DType.UINT8,), channels=(3, 4)))
        if task is Task.INPAINT:
            mask = draw(arrays(dtypes=(DType.UINT8,), shape=(image.height, image.width, 1)))
    params = draw(job_params)
    if task is Task.OUTPAINT and not any(params.expand):
        params = replace(params, expand=(8, 0, 8, 0))
    if task is not Task.GENERATE and denoising_steps(params.steps, params.strength) < 1:
        params = replace(params, strength=min_strength(params.steps))  # at least one step
    return Job(
        draw(job_ids), task, params, image, mask, tuple(draw(st.lists(controls(), max_size=2)))
    )


hellos = st.builds(
    Hello,
    client=names,
    version=names,
    token=st.none() | st.text(max_size=100),
    client_id=st.none() | names,
)

client_messages = st.one_of(
    hellos,
    jobs(),
    st.builds(Cancel, job_ids),
    st.builds(Fetch, job_ids),
    st.just(ListModels()),
)

model_infos = st.builds(
    ModelInfo,
    name=names,
    family=names,
    kind=st.sampled_from(["base", "controlnet", "lora", "preview"]),
    license=names,
    approved=st.booleans(),
    tiny=st.booleans(),
    description=texts,
)
system_infos = st.builds(
    SystemInfo,
    device=names,
    vram=st.integers(0, 2**63 - 1),
    torch=names,
    models_present=st.integers(0, INT31),
    models_missing=st.integers(0, INT31),
    warnings=st.lists(names, max_size=16).map(tuple),
)
limits = st.builds(Limits, **{name: st.integers(1, 2**40) for name in Limits().to_wire()})

server_messages = st.one_of(
    st.builds(
        Welcome,
        server=names,
        protocol=st.integers(0, INT31),
        capabilities=st.lists(names, max_size=4).map(tuple),
        models=st.lists(model_infos, max_size=3).map(tuple),
        default_model=names,
        limits=limits,
        client_id=names,
        notice=texts,
        system=st.none() | system_infos,
    ),
    st.builds(Models, st.lists(model_infos, max_size=3).map(tuple), names),
    st.builds(Accepted, job_ids, st.integers(0, INT31)),
    st.builds(
        Progress,
        job_ids,
        st.integers(0, INT31),
        st.integers(0, INT31),
        st.sampled_from(["loading", "denoise", "train"]),
        st.none() | arrays(),
        st.none() | st.floats(0.0, 1e6),
    ),
    st.builds(
        Result,
        id=job_ids,
        task=st.sampled_from(Task),
        images=st.lists(arrays(), max_size=3).map(tuple),
        seeds=st.lists(st.integers(0, SEED_MAX), max_size=3).map(tuple),
        model=names,
        tiny=st.booleans(),
        prompt=texts,
        timings=st.dictionaries(
            st.sampled_from(["queued", "load", "run", "total"]), st.floats(0.0, 1e9)
        ),
        files=st.lists(st.binary(max_size=64), max_size=2).map(tuple),
        coverage=st.none() | st.builds(Coverage, unit, st.lists(unit, max_size=16).map(tuple)),
        trained=st.none() | trained,
    ),
    st.builds(
        Error,
        code=st.sampled_from(ErrorCode),
        message=texts,
        id=st.none() | job_ids,
        field=st.none() | st.sampled_from(["params.width", "inputs.mask", "token", "type"]),
    ),
    st.builds(Cancelled, job_ids),
)

# What msgpack can carry in a header, for maps of the wrong shape.
wire_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
