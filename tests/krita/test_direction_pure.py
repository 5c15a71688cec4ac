"""Krita's references and regions without Krita (sfumato_krita/direction.py and the job it
feeds), under hypothesis: a region's mask from a layer's alpha at the job's size and
position, the region texts the document stores (round trip, damaged annotations, the
docker's prompt and negative fields), which layers are regions and in what order, the
reference kinds the docker offers, and the job build_job makes of them (each region's
negative, each reference's kind) — checked by the protocol's own decoder, so what the
plugin builds is what the server reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from sfumato_krita.direction import (
    KINDS,
    ReferenceLayer,
    alpha_mask,
    covers,
    dump_references,
    dump_regions,
    kind_of,
    kind_value,
    parse_references,
    parse_regions,
    region_fields,
    region_order,
    set_region,
)
from sfumato_krita.jobs import (
    CanvasInput,
    Mode,
    PluginError,
    Rect,
    Request,
    build_job,
    history_entry,
    round_up8,
)

from sfumato.hostdirection import RegionText, reference, region
from sfumato.protocol import (
    Array,
    DType,
    Limits,
    ReferenceKind,
    Result,
    Task,
    decode_client_message,
    encode_bytes,
)

sides = st.integers(1, 40)


@settings(max_examples=60, deadline=None)
@given(
    w=sides,
    h=sides,
    pad_w=st.integers(0, 9),
    pad_h=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_alpha_mask_is_the_layers_alpha_padded_with_nothing(
    w: int, h: int, pad_w: int, pad_h: int, seed: int
) -> None:
    bgra = np.random.default_rng(seed).integers(0, 256, (h, w, 4), np.uint8)
    mask = alpha_mask(bgra.tobytes(), w, h, w + pad_w, h + pad_h)
    got = np.frombuffer(mask, np.uint8).reshape(h + pad_h, w + pad_w)
    np.testing.assert_array_equal(got[:h, :w], bgra[..., 3])  # the alpha, placed at (0, 0)
    assert not got[h:].any() and not got[:, w:].any()  # padding: no region there
    assert covers(mask) == bool(bgra[..., 3].any())


def test_alpha_mask_refuses_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="read the layer over the job's region"):
        alpha_mask(bytes(4 * 10), 4, 4, 8, 8)
    with pytest.raises(ValueError, match="smaller"):
        alpha_mask(bytes(4 * 16), 4, 4, 3, 8)


texts = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.builds(RegionText, st.text(max_size=30), st.text(max_size=30)),
    max_size=6,
)


@given(texts)
def test_region_texts_survive_the_annotation(t: dict[str, RegionText]) -> None:
    kept = {k: v for k, v in t.items() if v.prompt.strip()}
    assert parse_regions(dump_regions(t)) == kept


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xfe", b"[1, 2]", b'{"a": 3, "b": {"prompt": 1}}', b"{"]
)
def test_a_damaged_annotation_is_no_regions_not_a_failed_job(data: bytes) -> None:
    assert parse_regions(data) == {}


@given(st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=8), texts)
def test_regions_follow_the_stack_and_skip_blank_or_gone_layers(
    stack: list[str], t: dict[str, RegionText]
) -> None:
    order = region_order(stack, t)
    assert order == [i for i in stack if i in order]  # the stack's order
    assert set(order) == {i for i in stack if i in t and t[i].prompt.strip()}


def test_set_region_with_a_blank_prompt_removes_it() -> None:
    t = set_region({}, "a", "brass lamp", "rust")
    assert t == {"a": RegionText("brass lamp", "rust")}
    assert set_region(t, "a", "  ", "rust") == {}  # a negative alone is no region


@given(texts, st.text(min_size=1, max_size=12), st.text(max_size=30), st.text(max_size=30))
def test_the_fields_typed_for_a_layer_are_what_the_document_gives_back(
    t: dict[str, RegionText], layer_id: str, prompt: str, negative: str
) -> None:
    """What the docker's two fields store for the active layer is what they show again
    after the annotation's round trip (the .kra keeps the annotation's bytes); the other
    layers' regions are untouched."""
    back = parse_regions(dump_regions(set_region(t, layer_id, prompt, negative)))
    assert region_fields(back, layer_id) == ((prompt, negative) if prompt.strip() else ("", ""))
    others = {k: v for k, v in t.items() if k != layer_id and v.prompt.strip()}
    assert {k: v for k, v in back.items() if k != layer_id} == others


kinds = st.sampled_from([None, *ReferenceKind])


def test_the_kinds_are_named_as_krita_ai_diffusion_names_them() -> None:
    assert [(k.label, k.kind) for k in KINDS] == [
        ("Reference", None),  # the whole model: no kind sent
        ("Style", ReferenceKind.STYLE),
        ("Composition", ReferenceKind.CONTENT),
    ]
    assert {k.kind for k in KINDS} == {None, *ReferenceKind}  # every protocol kind offered


@given(kinds, st.text(max_size=10))
def test_a_kinds_combo_data_reads_back_and_unknown_data_is_the_whole_model(
    kind: ReferenceKind | None, junk: str
) -> None:
    assert kind_of(kind_value(kind)) == kind
    if junk not in {k.value for k in KINDS}:
        assert kind_of(junk) is None


def _job(region_rect: Rect, inp_regions: tuple, refs: tuple = ()) -> object:
    inp = CanvasInput(64, 64, region_rect, None, None, references=refs, regions=inp_regions)
    return build_job(Request(Mode.GENERATE, prompt="a room", seed=1), inp, ("generate",), "j")


@settings(max_examples=30, deadline=None)
@given(
    w=st.integers(1, 64),
    h=st.integers(1, 64),
    negatives=st.lists(st.text(max_size=20), min_size=1, max_size=3),
    kind=kinds,
    seed=st.integers(0, 99),
)
def test_the_job_carries_each_region_at_its_size_and_reads_back(
    w: int, h: int, negatives: list[str], kind: ReferenceKind | None, seed: int
) -> None:
    n = len(negatives)
    rng = np.random.default_rng(seed)
    out_w, out_h = round_up8(w), round_up8(h)
    regions = []
    for k in range(n):
        bgra = rng.integers(0, 256, (h, w, 4), np.uint8).tobytes()
        mask = alpha_mask(bgra, w, h, out_w, out_h)
        regions.append(region(mask, out_w, out_h, RegionText(f"part {k}", negatives[k])))
    pic = rng.integers(0, 256, (5, 7, 3), np.uint8)
    ref = reference(pic.tobytes(), 7, 5, weight=0.4, start=0.1, end=0.8, kind=kind)
    job = _job(Rect(0, 0, w, h), tuple(regions), (ref,))
    back = decode_client_message(encode_bytes(job), Limits())
    assert [r.prompt for r in back.regions] == [f"part {k}" for k in range(n)]
    assert [r.negative for r in back.regions] == negatives
    for sent, got in zip(regions, back.regions, strict=True):
        assert got.mask.shape == (out_h, out_w, 1)
        np.testing.assert_array_equal(got.mask.to_numpy(), sent.mask.to_numpy())
    (r,) = back.references
    assert (r.weight, r.start, r.end, r.kind) == (0.4, 0.1, 0.8, kind)
    np.testing.assert_array_equal(r.image.to_numpy(), pic)


def test_too_many_regions_or_references_is_refused_naming_the_field() -> None:
    mask = b"\xff" * (64 * 64)
    many = tuple(region(mask, 64, 64, RegionText(f"p{k}")) for k in range(9))
    with pytest.raises(PluginError, match=r"inputs\.regions"):
        _job(Rect(0, 0, 64, 64), many)
    pic = reference(bytes(3 * 4), 2, 2)
    with pytest.raises(PluginError, match=r"inputs\.references"):
        _job(Rect(0, 0, 64, 64), (), (pic,) * 5)


@settings(max_examples=40, deadline=None)
@given(
    refs=st.lists(
        st.tuples(kinds, st.floats(0, 2), st.floats(0, 0.45), st.floats(0.5, 1)), max_size=4
    ),
    negatives=st.lists(st.text(max_size=12), max_size=3),
)
def test_the_history_remembers_each_references_kind_and_each_regions_negative(
    refs: list[tuple[ReferenceKind | None, float, float, float]], negatives: list[str]
) -> None:
    """What the .kra's history annotation keeps of a job: per reference its weight, start,
    end and kind (null: the whole picture), per region its prompt and negative."""
    pic = bytes(3 * 4)
    references = tuple(
        reference(pic, 2, 2, weight=w, start=a, end=b, kind=k) for k, w, a, b in refs
    )
    regions = tuple(
        region(b"\xff" * 64 * 64, 64, 64, RegionText(f"part {n}", neg))
        for n, neg in enumerate(negatives)
    )
    inp = CanvasInput(
        64, 64, Rect(0, 0, 64, 64), None, None, references=references, regions=regions
    )
    request = Request(Mode.GENERATE, prompt="a room", seed=3)
    job = build_job(request, inp, ("generate",), "j")
    result = Result(
        "j", Task.GENERATE, (Array(DType.UINT8, (64, 64, 3), bytes(64 * 64 * 3)),), (3,), "m"
    )
    entry = history_entry(job, request, inp, result, ["generate · seed 3"])
    stored = json.loads(json.dumps([entry], ensure_ascii=False))[0]  # as canvas.py stores it
    assert stored["references"] == [
        [r.weight, r.start, r.end, r.kind.value if r.kind else None] for r in references
    ]
    assert [kind for *_, kind in stored["references"]] == [k.value if k else None for k, *_ in refs]
    assert stored["regions"] == [[f"part {n}", neg] for n, neg in enumerate(negatives)]


numbers = {"weight": st.floats(0, 2), "start": st.floats(0, 1), "end": st.floats(0, 1)}
references = st.builds(
    ReferenceLayer, layer_id=st.text(min_size=1, max_size=40), kind=kinds, **numbers
) | st.builds(ReferenceLayer, path=st.text(min_size=1, max_size=60), kind=kinds, **numbers)


@given(st.lists(references, max_size=6))
def test_the_reference_list_survives_the_documents_annotation(refs: list[ReferenceLayer]) -> None:
    assert parse_references(dump_references(refs)) == refs


@given(
    st.one_of(
        st.binary(max_size=80),
        st.lists(
            st.dictionaries(
                st.sampled_from(["layer", "path", "kind", "weight", "start", "end", "x"]),
                st.one_of(
                    st.none(), st.booleans(), st.integers(-5, 5), st.floats(), st.text(max_size=8)
                ),
            ),
            max_size=5,
        ).map(lambda items: json.dumps(items).encode()),
    )
)
def test_a_damaged_reference_annotation_gives_only_usable_references(data: bytes) -> None:
    """Another tool's annotation or a damaged file: what comes back is only references the
    docker can show — a layer or a file, numbers inside its fields' ranges — never an error."""
    for ref in parse_references(data):
        assert bool(ref.layer_id) != bool(ref.path)
        assert 0.0 <= ref.weight <= 2.0 and 0.0 <= ref.start <= 1.0 and 0.0 <= ref.end <= 1.0
        assert ref.kind is None or ref.kind in set(ReferenceKind)
