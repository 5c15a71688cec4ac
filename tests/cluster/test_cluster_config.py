"""``[cluster]`` and ``serve --ray/--replicas``: read and checked before anything starts, each
error naming the setting; plain ``serve`` neither needs nor imports Ray."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sfumato.cli import main
from sfumato.protocol import Error, ErrorCode, Job, JobParams, Task
from sfumato.service.cluster_config import ClusterConfig
from sfumato.service.config import ConfigError, ServerConfig
from tests.ci import missing
from tests.server.conftest import Peer, finished
from tests.server.procs import ServerProcess


def test_the_cluster_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sfumato.toml"
    path.write_text('[cluster]\nray = true\naddress = "auto"\nreplicas = 3\nmax_restarts = 1\n')
    cluster = ServerConfig.from_file(path).cluster
    assert cluster == ClusterConfig(ray=True, address="auto", replicas=3, max_restarts=1)


def test_an_unknown_cluster_setting_is_named_with_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "sfumato.toml"
    path.write_text("[cluster]\nreplica = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting cluster\.replica; known: .*replicas"):
        ServerConfig.from_file(path)


def test_replicas_without_ray_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--replicas", "2", "--port", "0"]) == 2
    assert "--replicas needs --ray" in capsys.readouterr().err


def test_a_negative_replica_count_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--ray", "--replicas", "-1", "--port", "0"]) == 2
    assert "cluster.replicas must be 0 or more" in capsys.readouterr().err


def test_plain_serve_imports_no_ray(tmp_path: Path) -> None:
    """The server's modules import without Ray: it is the cluster extra's, used by --ray only."""
    code = (
        "import sys, sfumato.service, sfumato.service.server, sfumato.cli.serve; "
        "from sfumato.service import SfumatoServer, ServerConfig; "
        f"SfumatoServer(ServerConfig(port=0, results=__import__('pathlib').Path({str(tmp_path)!r}))); "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_an_unreachable_cluster_ends_jobs_with_the_address_and_the_fix(
    tmp_path: Path, model_cache: Path
) -> None:
    """ray.init retries a dead address for minutes: the front door gives up after
    cluster.connect_timeout, says so in welcome, and every job ends with why."""
    if importlib.util.find_spec("ray") is None:  # the extra: fails in CI, skips elsewhere
        missing("Ray is not installed", "pip install 'sfumato[cluster]' (./dev setup does)")
    config = tmp_path / "sfumato.toml"
    config.write_text('[cluster]\nray = true\naddress = "127.0.0.1:1"\nconnect_timeout = 2\n')
    server = ServerProcess(
        tmp_path / "results", model_cache, tmp_path / "server.log", "--config", str(config),
        "--no-preload",
    )  # fmt: skip
    try:
        peer = Peer(server.url)
        peer.hello()
        peer.send(Job("far-1", Task.GENERATE, JobParams(prompt="p", width=64, height=64)))
        end = peer.until(finished("far-1"), timeout=60)[-1]
        assert isinstance(end, Error) and end.code is ErrorCode.ENGINE_UNAVAILABLE, end
        assert "could not reach the Ray cluster at '127.0.0.1:1'" in end.message
        assert "cluster.address" in end.message
        welcome = Peer(server.url).hello()
        assert not welcome.ready and "127.0.0.1:1" in welcome.status
        peer.close()
    finally:
        assert server.term(timeout=60) == 0  # the stuck connect does not hold up the exit
    server.check_log()
