"""The log check the server-process tests rely on can fail: a server log that shows an
unobserved task death fails the test that started it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import UNOBSERVED, ServerProcess


@pytest.mark.parametrize("marker", UNOBSERVED)
def test_a_log_with_an_unobserved_task_death_fails_the_check(tmp_path: Path, marker: str) -> None:
    server = ServerProcess.__new__(ServerProcess)  # the log check alone, no process
    server.log_path = tmp_path / "server.log"
    server.log_path.write_text(f"INFO sfumato.server: fine\nERROR asyncio: {marker}\n")
    with pytest.raises(AssertionError, match=marker):
        server.check_log()
    server.log_path.write_text("INFO sfumato.server: fine\nERROR sfumato.worker: job x failed\n")
    server.check_log()
