"""The server's connection state machine: hello first, then the token, then anything."""

from __future__ import annotations

import msgpack
import pytest

from sfumato.protocol import (
    Cancel,
    ErrorCode,
    Fetch,
    Hello,
    Job,
    JobParams,
    Limits,
    ListModels,
    Message,
    ProtocolError,
    ServerSession,
    State,
    Task,
    encode_bytes,
)

TOKEN = "s3cret-τ"  # non-ASCII on purpose: compared as UTF-8


def receive(session: ServerSession, message: Message) -> Message:
    return session.receive(encode_bytes(message))


def refused(session: ServerSession, message: Message) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        receive(session, message)
    return info.value


@pytest.mark.parametrize(
    "first", [Job("j1", Task.GENERATE), Cancel("j1"), Fetch("j1"), ListModels()]
)
def test_hello_required_first(first: Message) -> None:
    session = ServerSession(Limits())
    error = refused(session, first)
    assert (error.code, error.field) == (ErrorCode.HELLO_REQUIRED, "type")
    assert session.state is State.AWAITING_HELLO  # the client may still say hello
    assert receive(session, Hello("krita")) == Hello("krita")
    assert session.state is State.READY
    assert receive(session, first) == first


def test_undecodable_message_before_hello_keeps_waiting() -> None:
    session = ServerSession(Limits())
    with pytest.raises(ProtocolError) as info:
        session.receive(msgpack.packb({"v": 1, "type": "hello"}))  # no client
    assert (info.value.code, info.value.field) == (ErrorCode.BAD_FIELD, "client")
    assert session.state is State.AWAITING_HELLO
    receive(session, Hello("krita"))
    assert session.state is State.READY


def test_no_token_server_accepts_any_hello() -> None:
    for hello in (Hello("a"), Hello("b", token="whatever"), Hello("c", token="")):
        session = ServerSession(Limits())
        receive(session, hello)
        assert session.state is State.READY and session.hello == hello


def test_right_token() -> None:
    session = ServerSession(Limits(), token=TOKEN)
    hello = Hello("blender", "0.1.0", token=TOKEN, client_id="c1")
    assert receive(session, hello) == hello
    assert (session.state, session.hello) == (State.READY, hello)
    assert receive(session, ListModels()) == ListModels()


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "no token"), ("s3cret", "wrong"), ("", "wrong"), (TOKEN + " ", "wrong")],
)
def test_wrong_or_missing_token_closes(token: str | None, reason: str) -> None:
    session = ServerSession(Limits(), token=TOKEN)
    error = refused(session, Hello("blender", token=token))
    assert (error.code, error.field) == (ErrorCode.UNAUTHORIZED, "token")
    assert reason in error.message and TOKEN not in error.message
    assert session.state is State.CLOSED and session.hello is None
    # nothing more is read on a closed session, not even the right hello
    for message in (Hello("blender", token=TOKEN), ListModels()):
        assert refused(session, message).code is ErrorCode.UNAUTHORIZED
    assert session.state is State.CLOSED


def test_second_hello_is_refused() -> None:
    session = ServerSession(Limits(), token=TOKEN)
    receive(session, Hello("blender", token=TOKEN, client_id="c1"))
    error = refused(session, Hello("blender", token=TOKEN, client_id="c2"))
    assert (error.code, error.field) == (ErrorCode.BAD_FIELD, "type")
    assert session.state is State.READY
    assert session.hello == Hello("blender", token=TOKEN, client_id="c1")


def test_session_uses_its_limits() -> None:
    session = ServerSession(Limits(max_steps=10))
    receive(session, Hello("k"))
    error = refused(session, Job("j1", Task.GENERATE, params=JobParams(steps=11)))
    assert (error.code, error.field, error.id) == (ErrorCode.BAD_FIELD, "params.steps", "j1")
    assert session.state is State.READY  # a bad job does not end the connection
