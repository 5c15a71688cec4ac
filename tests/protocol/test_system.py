"""``welcome.system`` (docs/protocol.md 5.1.1): absent unless known, lenient to newer servers,
strict on types, and the short line a plugin shows."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    ProtocolError,
    SystemInfo,
    Welcome,
    decode_server_message,
    encode_bytes,
)
from sfumato.protocol.system import MAX_TEXT, MAX_WARNINGS

from .strategies import FAST, system_infos


def frame(body: dict[str, Any]) -> bytes:
    return msgpack.packb({"v": 1, "type": "welcome", "server": "s", "protocol": 1, **body})


def header(message: Welcome) -> dict[str, Any]:
    return msgpack.unpackb(encode_bytes(message))


def test_a_welcome_without_system_writes_no_system_key() -> None:
    assert "system" not in header(Welcome("s", 1))
    decoded = decode_server_message(frame({}))
    assert isinstance(decoded, Welcome) and decoded.system is None


@FAST
@given(system_infos)
def test_system_round_trips(system: SystemInfo) -> None:
    decoded = decode_server_message(encode_bytes(Welcome("s", 1, system=system)))
    assert isinstance(decoded, Welcome)
    assert decoded.system == system


@FAST
@given(st.integers(0, 40), st.text(min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 50))
def test_a_reader_keeps_a_bounded_amount(count: int, long: str) -> None:
    decoded = decode_server_message(
        frame({"system": {"device": long, "warnings": [long] * count, "from_the_future": 1}})
    )
    assert isinstance(decoded, Welcome) and decoded.system is not None
    assert len(decoded.system.warnings) == min(count, MAX_WARNINGS)
    assert all(len(w) == MAX_TEXT for w in decoded.system.warnings)
    assert decoded.system.device == long[:MAX_TEXT]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vram": -1}, "system.vram"),
        ({"vram": "24 GB"}, "system.vram"),
        ({"warnings": "disk full"}, "system.warnings"),
        ({"models_missing": True}, "system.models_missing"),
    ],
)
def test_wrong_types_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server_message(frame({"system": body}))
    assert info.value.field == field


def test_system_must_be_a_map() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_server_message(frame({"system": ["cpu"]}))
    assert info.value.field == "system"


def test_the_line_says_device_memory_torch_and_models() -> None:
    line = SystemInfo("cuda:0 NVIDIA RTX 4090", 24 * 2**30, "2.5.1+cu124", 3, 2).line()
    assert line == "cuda:0 NVIDIA RTX 4090, 24 GiB · torch 2.5.1+cu124 · 3 of 5 models present"
    assert SystemInfo("cpu", 0, "2.5.1", 1, 0).line() == "cpu · torch 2.5.1 · 1 of 1 models present"
    assert SystemInfo(models_present=2).line().startswith("device not known yet")
