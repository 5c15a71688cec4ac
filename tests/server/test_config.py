"""The config file: the documented example is accepted as written; mistakes are named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sfumato.service.config import ConfigError, ServerConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"


def test_the_documented_config_file_works_as_written(tmp_path: Path) -> None:
    block = re.search(r"## Config file\n\n```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/quickstart.md lost its config example"
    path = tmp_path / "sfumato.toml"
    path.write_text(block.group(1))
    config = ServerConfig.from_file(path, port=9000)
    assert config.port == 9000  # flags override the file
    assert config.results == tmp_path / "results" and config.registry == tmp_path / "models.toml"
    assert config.limits.max_queued_jobs == 8 and config.png_compression == 0
    config.check()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[server]\nprot = 1\n", "unknown setting server.prot"),
        ("[limts]\n", "unknown table [limts]"),
        ("[limits]\nmax_side = 5\n", "unknown limit limits.max_side"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(says)):
        ServerConfig.from_file(path)


def test_an_exposed_bind_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="without a token"):
        ServerConfig(host="0.0.0.0", token="").check()
    ServerConfig(host="0.0.0.0", token="s3cret").check()
    ServerConfig(host="::1").check()
