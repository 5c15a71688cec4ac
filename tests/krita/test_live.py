"""Krita Live under Xvfb (issue 12, items 3 and 6): real Krita, the plugin from its zip, the
session's one real server. Three edits with Live on → one live layer, updated in place, each
job refining the painting (never the last result); a burst of strokes → few jobs; Apply → a
new layer with its history entry; Live off → the running job cancelled, the layer gone,
nothing sent. One kritarunner run (live_tasks.py); each test judges one part of it."""

from __future__ import annotations

import base64
import itertools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..conftest import RunningServer
from .conftest import KritaEnv

W = H = 128


@pytest.fixture(scope="module")
def run(krita_env: KritaEnv, server: RunningServer) -> dict[str, Any]:
    payload = {"url": server.url, "mode": "generate", "steps": 2, "strength": 0.75, "seed": 11}
    out = krita_env.run_task("live", payload, module="live_tasks")
    if dump := os.environ.get("SFUMATO_KRITA_LIVE_OUT"):  # to look at a failure's whole run
        Path(dump).write_text(json.dumps(out), "utf-8")
    return out


def pixels(step: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(step["layer_pixels"]), np.uint8).reshape(H, W, 4)


def test_three_edits_update_one_live_layer_in_place(run: dict[str, Any]) -> None:
    steps = run["steps"][:4]  # the first look, then three edits
    assert [s["live_layers"] for s in steps] == [1, 1, 1, 1], steps
    assert len({s["layer_id"] for s in steps}) == 1, "the live layer was made again"
    assert [s["top"] for s in steps] == ["Sfumato live"] * 4, steps
    assert len({s["job"] for s in steps}) == 4
    shown = [pixels(s) for s in steps]
    for before, after in itertools.pairwise(shown):
        assert not np.array_equal(before, after), "an edit left the live layer as it was"
    for s in steps:
        assert s["task"] == "refine" and s["strength"] == 0.75, s
        assert s["input_is_the_painting"], f"{s['what']}: the job refined the live result"
        assert s["status"].startswith("Live: shown"), s
    if "live" in run["capabilities"]:
        assert {tuple(s["live"]) for s in steps} == {(True, steps[0]["live"][1])}
    # edit 3 worked on the selection (plus context): the layer holds nothing outside it
    x, y, w, h = steps[3]["region"]
    assert steps[3]["region"] != [0, 0, W, H]
    last = shown[3]
    outside = np.ones((H, W), bool)
    outside[y : y + h, x : x + w] = False
    assert not last[outside].any(), "the last full-canvas result was left around the region"
    assert last[48:80, 48:80, 3].min() == 255  # the selected part is painted


def test_polls_look_without_reading_the_canvas(run: dict[str, Any]) -> None:
    """One region read per job sent; the polls in between only looked (thumbnails)."""
    assert run["reads"] == run["sent"], run
    assert run["looks"] >= 2 * run["reads"], run


def test_a_burst_of_strokes_sends_few_jobs(run: dict[str, Any]) -> None:
    assert 1 <= run["burst_jobs"] <= 2, run["burst_jobs"]
    assert run["steps"][4]["input_is_the_painting"]


def test_apply_copies_the_live_result_into_a_new_layer_with_its_history(
    run: dict[str, Any],
) -> None:
    applied = run["apply"]
    assert applied["name"] == applied["layer"] and applied["name"].endswith("· seed 11")
    assert applied["same_pixels"], applied
    assert applied["history"]["job_id"] == applied["job"] and applied["history"]["live"]
    assert applied["history"]["layers"] == [applied["name"]]
    assert applied["live_layers"] == 1  # Live goes on after Apply


def test_the_docker_s_live_row_turns_live_on_applies_and_turns_it_off(run: dict[str, Any]) -> None:
    assert run["box_before"] == [False, False]  # nothing to apply before a result
    pulled, apply_enabled, status = run["box_on"]
    assert pulled and not apply_enabled and status.startswith("Live:"), run["box_on"]
    assert run["box_shown"][0] and run["box_shown"][1].startswith("Live: shown")
    assert run["apply"]["history"]["layers"] == [run["apply"]["name"]]
    assert run["box_off"] == [False, False, False]


def test_live_off_cancels_the_running_job_and_sends_nothing_more(run: dict[str, Any]) -> None:
    off = run["off"]
    assert off["end"][1] == "Cancelled", off
    assert off["live_layers"] == 0 and off["sent_after"] == 0 and off["in_flight"] == [], off
    assert off["status"] == "Live is off", off
