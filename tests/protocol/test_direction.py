"""References and regions on the wire (docs/protocol.md 4.2.6): good jobs round-trip under
hypothesis, the doc's tables are the encoder's fields, and every bad input is refused when
the job is read with the code and field the document gives."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    MAX_REFERENCES,
    MAX_REGIONS,
    Array,
    DType,
    ErrorCode,
    Job,
    JobParams,
    Limits,
    LoraRef,
    ProtocolError,
    Reference,
    ReferenceKind,
    Region,
    Task,
    decode_client_message,
    encode,
    encode_bytes,
)

from .strategies import FAST
from .test_doc import first_column, keys, section

HEADING = "#### 4.2.6 Reference images and regions (capabilities `reference`, `regions`)"


def filled(dtype: DType, shape: tuple[int, int, int], seed: int = 0) -> Array:
    h, w, c = shape
    return Array(dtype, shape, random.Random(seed).randbytes(h * w * c * dtype.itemsize))


def picture(h: int = 5, w: int = 7, c: int = 3) -> Array:
    return filled(DType.UINT8, (h, w, c))


def mask(h: int = 64, w: int = 64) -> Array:
    return filled(DType.UINT8, (h, w, 1), 1)


FULL_REFERENCE = Reference(picture(), 0.5, 0.1, 0.9, ReferenceKind.STYLE)
FULL_REGION = Region(mask(), "a brass lamp", "rust", (LoraRef("l", 0.5),))
FULL = Job(
    "j", Task.GENERATE, JobParams(width=64, height=64),
    references=(FULL_REFERENCE,), regions=(FULL_REGION,),
)  # fmt: skip


def test_tables_are_the_encoders_fields_in_order() -> None:
    text = section(HEADING)
    assert first_column(text) == keys(FULL, "inputs", "references", 0)
    assert first_column(text[text.index("**Regions**") :]) == keys(FULL, "inputs", "regions", 0)


def test_defaults_are_left_out_and_read_back() -> None:
    plain = replace(FULL, references=(Reference(picture()),), regions=(Region(mask(), "p"),))
    assert keys(plain, "inputs", "regions", 0) == ["mask", "prompt"]
    assert keys(plain, "inputs", "references", 0) == ["image", "weight", "start", "end"]
    assert decode_client_message(encode_bytes(plain), Limits()) == plain


@st.composite
def direction_jobs(draw: st.DrawFn) -> Job:
    task = draw(st.sampled_from((Task.GENERATE, Task.REFINE, Task.INPAINT)))
    side = draw(st.integers(8, 12)) * 8
    h, w = side, draw(st.integers(8, 12)) * 8
    image = m = None
    if task is not Task.GENERATE:
        image = filled(DType.UINT8, (h, w, draw(st.sampled_from((3, 4)))))
        m = mask(h, w) if task is Task.INPAINT else None
    params = JobParams(width=w, height=h, steps=4, strength=1.0)
    start = draw(st.floats(0.0, 0.49, allow_nan=False))
    references = draw(
        st.lists(
            st.builds(
                Reference,
                image=st.builds(
                    picture, st.integers(1, 9), st.integers(1, 9), st.sampled_from((3, 4))
                ),
                weight=st.floats(0.0, 2.0, allow_nan=False),
                start=st.just(start),
                end=st.floats(0.5, 1.0, allow_nan=False),
                kind=st.none() | st.sampled_from(ReferenceKind),
            ),
            max_size=MAX_REFERENCES,
        )
    )
    lora_names = iter(f"l{n}" for n in range(100))
    regions = draw(
        st.lists(
            st.builds(
                Region,
                mask=st.just(mask(h, w)),
                prompt=st.text(min_size=1, max_size=40).filter(str.strip),
                negative=st.text(max_size=20),
                loras=st.integers(0, 1).map(
                    lambda n: tuple(LoraRef(next(lora_names), 0.5) for _ in range(n))
                ),
            ),
            max_size=MAX_REGIONS - 1,
        )
    )
    return Job("j", task, params, image, m, references=tuple(references), regions=tuple(regions))


@FAST
@given(direction_jobs())
def test_good_jobs_round_trip(job: Job) -> None:
    assert decode_client_message(encode_bytes(job), Limits()) == job


def generate(**inputs: Any) -> Job:
    return Job("j", Task.GENERATE, JobParams(width=64, height=64), **inputs)


UPSCALE = Job("j", Task.UPSCALE, JobParams(strength=0.5), picture(8, 8))
CASES: list[tuple[str, Job, ErrorCode, str]] = [
    ("region mask of the wrong size", generate(regions=(Region(mask(64, 72), "p"),)),
     ErrorCode.BAD_ARRAY, "inputs.regions[0].mask"),
    ("region mask of 3 channels", generate(regions=(Region(picture(64, 64), "p"),)),
     ErrorCode.BAD_ARRAY, "inputs.regions[0].mask"),
    ("an empty region prompt", generate(regions=(Region(mask(), "p"), Region(mask(), " "))),
     ErrorCode.BAD_FIELD, "inputs.regions[1].prompt"),
    ("too many regions", generate(regions=(Region(mask(), "p"),) * (MAX_REGIONS + 1)),
     ErrorCode.BAD_FIELD, "inputs.regions"),
    ("regions on upscale", replace(UPSCALE, regions=(Region(mask(16, 16), "p"),)),
     ErrorCode.BAD_FIELD, "inputs.regions"),
    ("a LoRA twice", generate(regions=(Region(mask(), "p", loras=(LoraRef("a"),)),) * 2),
     ErrorCode.BAD_FIELD, "inputs.regions[1].loras[0].name"),
    ("too many references", generate(references=(Reference(picture()),) * (MAX_REFERENCES + 1)),
     ErrorCode.BAD_FIELD, "inputs.references"),
    ("a float reference", generate(references=(Reference(filled(DType.FLOAT32, (2, 2, 3))),)),
     ErrorCode.BAD_ARRAY, "inputs.references[0].image"),
    ("a grey reference", generate(references=(Reference(picture(c=1)),)),
     ErrorCode.BAD_ARRAY, "inputs.references[0].image"),
    ("start after end", generate(references=(Reference(picture(), start=0.8, end=0.2),)),
     ErrorCode.BAD_FIELD, "inputs.references[0].start"),
    ("a reference too large", generate(references=(Reference(picture(8, 4097)),)),
     ErrorCode.IMAGE_TOO_LARGE, "inputs.references[0].image"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "job", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_inputs_name_their_field(what: str, job: Job, code: ErrorCode, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(encode_bytes(job), Limits())
    error = caught.value
    assert (error.code, error.field) == (code, field), error.message
    assert any(w in error.message for w in ("send", "must", "drop", "give", "scale it down"))


@FAST
@given(st.integers(1, 300), st.sampled_from(("weight", "start", "end")))
def test_numbers_out_of_range_are_refused(tenths: int, name: str) -> None:
    value = tenths / 10 + (2.0 if name == "weight" else 1.0)
    chunks = encode(generate(references=(Reference(picture()),)))
    head = msgpack.unpackb(bytes(chunks[0]), raw=False)
    head["inputs"]["references"][0][name] = value
    frame = msgpack.packb(head, use_bin_type=True) + b"".join(bytes(c) for c in chunks[1:])
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(frame, Limits())
    assert caught.value.field == f"inputs.references[0].{name}"


def test_regions_on_refine_take_the_image_size() -> None:
    image = picture(48, 80)
    job = Job("j", Task.REFINE, JobParams(width=512, height=512), image,
              regions=(Region(mask(48, 80), "p"),))  # fmt: skip
    assert decode_client_message(encode_bytes(job), Limits()) == job
    with pytest.raises(ProtocolError) as caught:
        decode_client_message(encode_bytes(replace(job, regions=(Region(mask(), "p"),))), Limits())
    assert caught.value.field == "inputs.regions[0].mask"
