"""A config file is checked when it is read: every setting of every table, its type and its
range, each error naming the file and the setting. Nothing waits for a client to meet it."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.protocol import Limits
from sfumato.service.cluster_config import ClusterConfig
from sfumato.service.config import _SERVER_TYPES, ConfigError, Resources, ServerConfig

from ..protocol.strategies import FAST

SERVER = [f.name for f in fields(ServerConfig) if f.name not in ("limits", "resources", "cluster")]
SETTINGS = (
    [("server", n) for n in SERVER]
    + [("limits", f.name) for f in fields(Limits)]
    + [("resources", f.name) for f in fields(Resources)]
    + [("cluster", f.name) for f in fields(ClusterConfig)]
)


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)  # fmt: skip
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # A TOML basic string takes JSON's escapes, except surrogate pairs; DEL must be escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(toml(v) for v in value) + "]"


def load(tmp_path: Path, table: str, name: str, value: Any) -> ServerConfig:
    path = tmp_path / "sfumato.toml"
    path.write_text(f"[{table}]\n{name} = {toml(value)}\n", encoding="utf-8")
    return ServerConfig.from_file(path)


def test_every_server_setting_has_a_declared_type() -> None:
    """A setting added to ServerConfig without a type here would go unchecked (KeyError)."""
    assert set(_SERVER_TYPES) == set(SERVER)


@pytest.mark.parametrize(("table", "name"), SETTINGS)
def test_a_value_of_the_wrong_type_is_named_when_the_file_is_read(
    tmp_path: Path, table: str, name: str
) -> None:
    # An inline table fits no setting; the error names the file, the table and the setting.
    with pytest.raises(ConfigError, match=re.escape(f"{table}.{name} must be")) as caught:
        load(tmp_path, table, name, {"a": 1})
    assert str(tmp_path / "sfumato.toml") in str(caught.value)


@pytest.mark.parametrize(
    ("table", "name", "value", "says"),
    [
        ("server", "port", 70000, "port 70000 must be from 0 to 65535"),
        ("server", "png_compression", 12, "png_compression must be an integer from 0 to 9"),
        ("server", "shutdown_grace", -1, "shutdown_grace must be a number of seconds"),
        ("server", "shutdown_grace", math.inf, "shutdown_grace must be a number of seconds"),
        ("server", "device", "gpu", "device 'gpu' is not a device"),
        ("server", "results", "a\x00b", "server.results must be a string"),
        ("server", "allowed_origins", "http://a", "server.allowed_origins must be a list"),
        ("server", "allowed_origins", ["http://a", 3], "server.allowed_origins must be a list"),
        ("server", "preload", 1, "server.preload must be true or false"),
        ("server", "host", "0.0.0.0", "without a token"),
        ("resources", "hello_timeout", math.nan, "resources.hello_timeout must be a finite"),
        ("resources", "send_timeout", math.inf, "resources.send_timeout must be a finite"),
        ("limits", "max_variants", 0, "limits.max_variants must be a positive integer"),
        ("cluster", "replicas", -1, "cluster.replicas must be 0 or more"),
        ("cluster", "cpus_per_replica", 0, "cluster.cpus_per_replica must be at least 1"),
        ("cluster", "ray", "yes", "cluster.ray must be true or false"),
        ("cluster", "address", " auto", "cluster.address ' auto' is not an address"),
        ("cluster", "namespace", " ", "cluster.namespace must not be empty"),
    ],
)
def test_out_of_range_values_are_named_when_the_file_is_read(
    tmp_path: Path, table: str, name: str, value: Any, says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        load(tmp_path, table, name, value)


VALUES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.one_of(st.text(max_size=4), st.integers(0, 9)), max_size=2),
)


@settings(FAST, max_examples=300)
@given(setting=st.sampled_from(SETTINGS), value=VALUES)
def test_any_value_loads_with_its_type_or_is_named(
    tmp_path_factory: pytest.TempPathFactory, setting: tuple[str, str], value: Any
) -> None:
    """Whatever a file says, reading it either gives a config whose setting has the declared
    type (and passes every check) or raises ConfigError naming the setting: never another
    exception, and never a config that fails later."""
    table, name = setting
    try:
        config = load(tmp_path_factory.mktemp("cfg"), table, name, value)
    except ConfigError as exc:
        named = name in str(exc) or (name == "host" and "without a token" in str(exc))
        assert named, str(exc)
        return
    config.check()  # what the server runs at start: nothing new can fail there
    section = config if table == "server" else getattr(config, table)
    loaded = getattr(section, name)
    if table == "server":
        types, _what = _SERVER_TYPES[name]
        if name in ("results", "cache", "registry", "datasets", "signing_cert", "signing_key"):
            assert isinstance(loaded, Path)
        elif name == "allowed_origins":
            assert all(isinstance(o, str) for o in loaded)
        else:
            assert type(loaded) in types
    elif table == "cluster":  # true/false, a string or an integer, as its default
        assert type(loaded) is type(getattr(ClusterConfig(), name))
    else:
        assert isinstance(loaded, (int, float)) and not isinstance(loaded, bool)
        assert math.isfinite(loaded)
