"""``sfumato review``'s refusals, in-process: each says what to do and writes nothing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sfumato.cli.main import main


def test_a_folder_that_is_not_a_batch_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["review", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no manifest.json" in err and "sfumato batch PLAN --out" in err
    assert not (tmp_path / "review.sqlite").exists()


def test_export_with_nothing_reviewed_and_a_busy_port_are_refused(
    made_batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    batch = Path(shutil.copytree(made_batch, tmp_path / "batch"))
    assert main(["review", str(batch), "--export", str(tmp_path / "picks")]) == 1
    assert (
        "nothing in" in capsys.readouterr().err
        and not (tmp_path / "picks" / "decisions.csv").exists()
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["review", str(batch), "--port", str(port), "--token", "t"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
