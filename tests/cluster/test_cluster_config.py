"""``[cluster]`` and ``serve --ray/--replicas``: read and checked before anything starts, each
error naming the setting; plain ``serve`` neither needs nor imports Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sfumato.cli import main
from sfumato.service.cluster_config import ClusterConfig
from sfumato.service.config import ConfigError, ServerConfig


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
