"""The server answers at once and loads models lazily, saying so."""

from __future__ import annotations

from pathlib import Path

from sfumato.client import make_job
from sfumato.protocol import Progress, Result

from ..conftest import running_server
from .conftest import Peer, finished


def test_answers_before_any_model_loads_then_reports_loading(
    tmp_path: Path, model_cache: Path
) -> None:
    with running_server(tmp_path, model_cache, "--no-preload") as s:
        peer = Peer(s.url)
        welcome = peer.hello()
        # It answered with the engine not imported: torch's library is not mapped yet.
        assert "libtorch" not in torch_libraries(s.proc.pid)
        assert "tiny model" in welcome.notice
        job = make_job("generate", prompt="x", width=64, height=64, steps=2, seed=1)
        peer.send(job)
        messages = peer.until(finished(job.id))
        stages = [m.stage for m in messages if isinstance(m, Progress)]
        assert stages[0] == "loading" and stages[-1] == "denoise"
        assert isinstance(messages[-1], Result)
        assert "libtorch" in torch_libraries(s.proc.pid)  # the check above can see it
        peer.close()


def torch_libraries(pid: int) -> str:
    """The shared objects a (Linux) process has mapped whose path names torch."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "\n".join(sorted({line.split()[-1] for line in maps.splitlines() if "torch" in line}))
