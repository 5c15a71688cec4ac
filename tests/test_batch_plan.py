"""Batch plans expand into the full matrix, with stable keys and ids; bad plans say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfumato.batch import PlanError, load_plan, parse_plan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "batch-plan.toml"


def test_example_plan_expands_to_every_combination() -> None:
    plan = load_plan(EXAMPLE)
    items = plan.items()
    assert len(items) == 2 * 2 * 2 * 1 * 2  # prompts × segments × styles × sizes × seeds
    assert len({i.key for i in items}) == len(items) and len({i.job_id for i in items}) == len(
        items
    )
    brand = [i for i in items if i.style.name == "brand"]
    assert brand and all(i.style.loras[0].name == "tiny-sd-style" for i in brand)
    assert all(i.full_prompt.endswith(plan.segments[i.segment]) for i in items)


def test_ids_are_stable_across_loads() -> None:
    assert [i.job_id for i in load_plan(EXAMPLE).items()] == [
        i.job_id for i in load_plan(EXAMPLE).items()
    ]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({}, "prompts"),
        ({"prompts": ["x"], "seeds": [-1]}, "seeds"),
        ({"prompts": ["x"], "sizes": [[100, 64]]}, "multiples of 8"),
        ({"prompts": ["x"], "styles": {"brand": [{"weight": 1}]}}, "styles.brand"),
        ({"prompts": ["x"], "colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_plans_name_the_problem(data: dict, says: str) -> None:
    with pytest.raises(PlanError, match=says):
        parse_plan(data)
