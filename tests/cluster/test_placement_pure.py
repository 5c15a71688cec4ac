"""The cluster's placement policy on its own: affinity first, a retry kept off the replica it
died on while another can take it, and never a busy or dead replica."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sfumato.service.placement import Slot, all_down, choose

MODELS = ("tiny-sd", "tiny-sdxl", "other")


@st.composite
def clusters(draw: st.DrawFn) -> list[Slot]:
    n = draw(st.integers(1, 6))
    slots = []
    for index in range(n):
        down = draw(st.booleans())
        alive = not down and draw(st.booleans())
        running = ("owner", f"job-{index}") if alive and draw(st.booleans()) else None
        loaded = draw(st.sampled_from((None, *MODELS)))
        slots.append(Slot(index, f"r{index}", alive, down, running, loaded))
    return slots


@given(clusters(), st.sampled_from(MODELS))
def test_a_job_goes_where_its_model_is_when_such_a_replica_is_free(
    slots: list[Slot], model: str
) -> None:
    got = choose(slots, model)
    free = [s for s in slots if s.alive and s.running is None]
    if not free:
        assert got is None
        return
    assert got is not None and got.free
    if any(s.loaded == model for s in free):
        assert got.loaded == model
    elif any(s.loaded is None for s in free):
        assert got.loaded is None  # an empty replica before evicting another model


@given(clusters(), st.sampled_from(MODELS), st.data())
def test_a_retry_avoids_the_replica_it_died_on_while_another_can_take_it(
    slots: list[Slot], model: str, data: st.DataObject
) -> None:
    avoid = data.draw(st.integers(0, len(slots) - 1))
    got = choose(slots, model, avoid)
    others = [s for s in slots if s.index != avoid and not s.down]
    if got is not None:
        assert got.free
        if others:
            assert got.index != avoid
    elif not others:
        assert not slots[avoid].free  # it goes back only to its own, restarted, once free


def test_two_models_two_replicas_each_keeps_its_model() -> None:
    a, b = Slot(0, "a", loaded="tiny-sd"), Slot(1, "b", loaded="tiny-sdxl")
    for _ in range(3):
        assert choose([a, b], "tiny-sdxl") is b
        assert choose([a, b], "tiny-sd") is a
    a.running = ("o", "j")
    assert choose([a, b], "tiny-sd") is b  # busy: any free one rather than wait


def test_all_down_only_when_no_replica_can_come_back() -> None:
    assert all_down([])
    assert not all_down([Slot(0, "a", alive=False)])  # restarting
    assert all_down([Slot(0, "a", alive=False, down=True)])
