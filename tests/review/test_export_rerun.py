"""``sfumato review --export`` and ``sfumato batch --from-picks`` on a real batch: the picks are
copied byte for byte with their credentials, every reviewed output is in the CSV and the JSON,
and the rerun makes each pick again plus its new seeds at the new step count."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from sfumato.cli.main import main
from sfumato.provenance import verify_png
from sfumato.review import Decision, Decisions, variation_seed

from .conftest import sfumato


def decide(batch: Path) -> dict[str, str]:
    """Two picks (one commented), a reject, a star only; returns key → what it got."""
    keys = [e["key"] for e in json.loads((batch / "manifest.json").read_text())["items"]]
    with Decisions(batch) as store:
        store.change(keys[0], decision=Decision.PICK, reviewer="cd")
        store.change(keys[5], decision=Decision.PICK, comment="use for the poster", reviewer="cd")
        store.change(keys[2], decision=Decision.REJECT, reviewer="cd")
        store.change(keys[3], star=True, reviewer="cd")
    return {keys[0]: "pick", keys[5]: "pick", keys[2]: "reject", keys[3]: "star"}


def test_export_copies_the_picks_with_credentials_and_writes_every_decision(
    batch: Path, tmp_path: Path
) -> None:
    made = decide(batch)
    dest = tmp_path / "picks"
    run = sfumato("review", str(batch), "--export", str(dest))
    assert run.returncode == 0, run.stderr
    assert "2 picked of 4 reviewed" in run.stdout
    picks = sorted(k for k, v in made.items() if v == "pick")
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f"{k}.png" for k in picks] + ["decisions.csv", "decisions.json"]
    )
    for key in picks:
        copy = (dest / f"{key}.png").read_bytes()
        assert copy == (batch / f"{key}.png").read_bytes()
        check = verify_png(copy)
        assert check.ok and check.facts is not None and check.facts["seed"] in (5, 6)

    body = json.loads((dest / "decisions.json").read_text())
    rows = {r["key"]: r for r in body["items"]}
    assert set(rows) == set(made) and body["picked"] == 2
    for key, what in made.items():
        row = rows[key]
        assert row["decision"] == (what if what != "star" else "none")
        assert row["star"] is (what == "star") and row["reviewer"] == "cd"
        if what == "pick":
            data = (batch / f"{key}.png").read_bytes()
            assert row["sha256"] == hashlib.sha256(data).hexdigest()
            assert row["copied"] == [f"{key}.png"] and row["credentials"] == verify_png(data).state
        else:
            assert row["copied"] == [] and row["sha256"] == ""
    assert [r["comment"] for r in body["items"] if r["comment"]] == ["use for the poster"]
    assert [(h["key"], h["decision"], h["star"]) for h in body["history"]] == [
        (k, "none" if v == "star" else v, v == "star") for k, v in made.items()
    ]  # every change in the order it was made

    with (dest / "decisions.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["key"] for r in table] == [r["key"] for r in body["items"]]
    for r in table:
        assert r["decision"] == rows[r["key"]]["decision"]
        assert (
            r["star"] == str(int(rows[r["key"]]["star"]))
            and r["comment"] == rows[r["key"]]["comment"]
        )
        assert r["prompt"] == rows[r["key"]]["prompt"] and r["seed"] == str(rows[r["key"]]["seed"])


def test_from_picks_reruns_each_pick_with_new_seeds_and_steps(
    server, batch: Path, plan_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = decide(batch)
    picks = [k for k, v in made.items() if v == "pick"]
    out = tmp_path / "rerun"
    rerun = ["batch", str(plan_file), "--from-picks", str(batch), "--url", server.url]
    assert main([*rerun, "--out", str(out)]) == 1  # in-process: the same parser and code
    assert "--variations N" in capsys.readouterr().err
    assert main([*rerun, "--out", str(batch), "--steps", "3"]) == 1
    assert "new folder" in capsys.readouterr().err

    assert main([*rerun, "--out", str(out), "--variations", "1", "--steps", "3"]) == 0
    assert "rerunning 2 picks as 4 outputs at 3 steps" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())["items"]
    assert len(manifest) == 4 and {e["steps"] for e in manifest} == {3}
    lineage = json.loads((out / "from-picks.json").read_text())
    assert lineage["steps"] == 3 and set(lineage["picks"]) == set(picks)
    original = {e["key"]: e for e in json.loads((batch / "manifest.json").read_text())["items"]}
    by_key = {e["key"]: e for e in manifest}
    for key in picks:
        again, extra = lineage["picks"][key]
        assert again == key  # the pick itself, at the new step count …
        assert by_key[extra]["seed"] == variation_seed(key, 0)  # … and one new seed
        for k in (again, extra):
            assert by_key[k]["full_prompt"] == original[key]["full_prompt"]
            assert by_key[k]["segment"] == original[key]["segment"]
        facts = verify_png((out / f"{key}.png").read_bytes()).facts
        assert facts is not None and facts["params"]["steps"] == 3
        assert (out / f"{key}.png").read_bytes() != (batch / f"{key}.png").read_bytes()
