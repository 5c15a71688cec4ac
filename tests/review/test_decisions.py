"""The decision store and the change parser, pure (a temp SQLite file, no server): any
sequence of changes ends in the state a plain fold of them gives, survives reopening, and
keeps every change in the history; any JSON the page could send is accepted or refused with
a ReviewError naming a field."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.review import Decision, Decisions, Review, ReviewError, parse_change

KEYS = ["p0-a-base-64x64-s1", "p0-b-base-64x64-s1", "p1-a-base-64x64-s2"]
change = st.fixed_dictionaries(
    {"key": st.sampled_from(KEYS)},
    optional={
        "decision": st.sampled_from([d.value for d in Decision]),
        "star": st.booleans(),
        "comment": st.text(max_size=40),
    },
).filter(lambda c: len(c) > 1)


@settings(max_examples=25, deadline=None)
@given(st.lists(change, max_size=12))
def test_any_sequence_of_changes_ends_as_their_fold_and_survives_reopening(changes) -> None:
    expected: dict[str, Review] = {}
    with tempfile.TemporaryDirectory() as folder:
        with Decisions(Path(folder)) as store:
            for c in changes:
                key, decision, star, comment = parse_change(c, set(KEYS))
                got = store.change(key, decision=decision, star=star, comment=comment, reviewer="r")
                old = expected.get(key, Review.blank(key))
                expected[key] = Review(
                    key,
                    old.decision if decision is None else decision,
                    old.star if star is None else star,
                    old.comment if comment is None else comment,
                )
                assert (got.decision, got.star, got.comment) == (
                    expected[key].decision, expected[key].star, expected[key].comment
                )  # fmt: skip
        with Decisions(Path(folder)) as again:
            stored = again.all()
            assert len(again.history()) == len(changes)
        assert set(stored) == set(expected)
        for key, want in expected.items():
            assert (stored[key].decision, stored[key].star, stored[key].comment) == (
                want.decision, want.star, want.comment
            )  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(["key", "decision", "star", "comment", "other"]),
            st.one_of(json_values, st.sampled_from([*KEYS, "pick", "reject", "none"])),
        ),
    )
)
def test_any_json_is_a_valid_change_or_a_review_error_naming_a_field(data) -> None:
    try:
        key, decision, star, comment = parse_change(data, set(KEYS))
    except ReviewError as exc:
        assert exc.field and str(exc)
        return
    assert key in KEYS and (decision, star, comment) != (None, None, None)
    assert decision is None or isinstance(decision, Decision)
    assert star is None or isinstance(star, bool)


def test_a_review_file_from_a_newer_sfumato_is_refused(tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "review.sqlite") as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ReviewError, match="newer Sfumato"):
        Decisions(tmp_path)


def test_the_review_page_runs_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, sfumato.review.web, sfumato.review.export, sfumato.cli.review; "
            "print('torch' in sys.modules, 'diffusers' in sys.modules)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["False", "False"], run.stderr
