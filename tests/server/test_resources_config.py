"""The [resources] and [limits] tables: wrong types and ranges are named with the fix; the
byte budget and the socket gate hold what they promise."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.service.config import ConfigError, Resources, ServerConfig
from sfumato.service.resources import SOCKET_SLACK, ByteBudget, SocketGate


def _load(tmp_path: Path, text: str) -> ServerConfig:
    path = tmp_path / "c.toml"
    path.write_text(text)
    config = ServerConfig.from_file(path)
    config.check()
    return config


def test_resources_are_read_from_the_config_file(tmp_path: Path) -> None:
    config = _load(tmp_path, "[resources]\nhello_timeout = 2\nmax_connections = 7\n")
    assert config.resources.hello_timeout == 2 and config.resources.max_connections == 7
    assert config.resources.outbox_bytes == Resources().outbox_bytes


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[resources]\nhello_timout = 1\n", "unknown setting resources.hello_timout"),
        ('[resources]\nhello_timeout = "10"\n', "resources.hello_timeout must be a number"),
        ("[resources]\nmax_connections = 2.5\n", "resources.max_connections must be an integer"),
        ("[resources]\nmax_connections = true\n", "resources.max_connections must be an integer"),
        ("[resources]\nmax_connections = 0\n", "resources.max_connections must be greater than 0"),
        ("[resources]\nsend_timeout = -1\n", "resources.send_timeout must be greater than 0"),
        ("[resources]\nretention_days = -1\n", "0 turns it off"),
        ("[resources]\nmax_frame_bytes = 1000\n", "resources.max_frame_bytes must be at least"),
        (
            "[limits]\nmax_message_bytes = 2000000000\n",
            "resources.inflight_bytes (1073741824) is below limits.max_message_bytes",
        ),
        ("[resources]\ninflight_wait = 30\n", "resources.inflight_wait (30 s) must be below"),
        ("[resources]\noutbox_total_bytes = 0\n", "resources.outbox_total_bytes must be greater"),
        ("[limits]\nmax_queued_jobs = 0\n", "limits.max_queued_jobs must be a positive integer"),
        ('[limits]\nmax_steps = "9"\n', "limits.max_steps must be a positive integer"),
    ],
)
def test_resource_mistakes_are_named(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        _load(tmp_path, text)


def test_zero_turns_retention_off(tmp_path: Path) -> None:
    config = _load(tmp_path, "[resources]\nretention_days = 0\nretention_bytes = 0\n")
    assert config.resources.retention_days == 0 and config.resources.retention_bytes == 0


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 64),
    requests=st.lists(st.integers(1, 64), min_size=1, max_size=30),
)
def test_the_byte_budget_never_hands_out_more_than_it_has(
    capacity: int, requests: list[int]
) -> None:
    async def main() -> None:
        budget = ByteBudget(capacity)
        held: list[int] = []

        async def one(n: int) -> None:
            if await budget.take(n, timeout=0.01):
                held.append(n)
                assert budget.used <= capacity
                await asyncio.sleep(0)
                budget.give(n)
                held.remove(n)

        await asyncio.gather(*(one(n) for n in requests))
        assert budget.used == 0 and not held

    asyncio.run(main())


def test_a_waiter_gets_its_bytes_when_they_come_back_and_fifo() -> None:
    async def main() -> None:
        budget = ByteBudget(10)
        assert await budget.take(8, timeout=0)
        order: list[str] = []

        async def wait(name: str, n: int) -> None:
            if await budget.take(n, timeout=5):
                order.append(name)

        big = asyncio.create_task(wait("big", 9))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(wait("small", 1))  # fits now, but waits behind big
        await asyncio.sleep(0.01)
        assert order == []
        budget.give(8)
        await asyncio.gather(big, small)
        assert order == ["big", "small"]
        assert budget.used == 10

    asyncio.run(main())


def test_a_cancelled_waiter_keeps_nothing() -> None:
    async def main() -> None:
        budget = ByteBudget(4)
        assert await budget.take(4, timeout=0)
        task = asyncio.create_task(budget.take(2, timeout=5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        budget.give(4)
        assert budget.used == 0

    asyncio.run(main())


def test_the_socket_gate_sheds_past_its_ceiling() -> None:
    gate = SocketGate(2)
    admitted = sum(gate.admit() for _ in range(2 + SOCKET_SLACK + 5))
    assert admitted == 2 + SOCKET_SLACK and gate.shed == 5
    gate.release()
    assert gate.admit()
