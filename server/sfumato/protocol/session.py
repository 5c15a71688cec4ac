"""The server's view of one connection, sans I/O: ``hello`` first, token checked, then jobs.

The transport feeds each received message to :meth:`ServerSession.receive` and sends what
comes back; it never interprets bytes itself.
"""

from __future__ import annotations

import hmac
from enum import Enum

from .codec import ClientMessage, decode_client_message
from .errors import ErrorCode, ProtocolError
from .limits import Limits
from .messages import Hello
from .refs import Resolver


class State(Enum):
    AWAITING_HELLO = "awaiting_hello"
    READY = "ready"
    CLOSED = "closed"  # the peer failed authentication; the transport must close


class ServerSession:
    def __init__(self, limits: Limits, token: str | None = None) -> None:
        self.limits = limits
        self._token = token or None  # an empty token would let everyone in: treat as none
        self.state = State.AWAITING_HELLO
        self.hello: Hello | None = None
        self.resolver: Resolver | None = None  # arrays by reference, once hello (refs.py)

    def receive(self, data: bytes | bytearray | memoryview) -> ClientMessage:
        """Decode one message and advance the state. Raises :class:`ProtocolError`; after an
        ``UNAUTHORIZED`` error the state is CLOSED and the transport should close."""
        if self.state is State.CLOSED:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, "this connection is closed; reconnect")
        resolver = self.resolver if self.state is State.READY else None
        message = decode_client_message(data, self.limits, resolver)
        if isinstance(message, Hello):
            if self.state is State.READY:
                raise ProtocolError(
                    ErrorCode.BAD_FIELD,
                    "type hello: this connection already said hello; send hello once, as the "
                    "first message (to change client or client_id, open a new connection)",
                    field="type",
                )
            self._accept_hello(message)
        elif self.state is State.AWAITING_HELLO:
            raise ProtocolError(
                ErrorCode.HELLO_REQUIRED,
                f"send hello before {message.TYPE}; the first message on a connection is hello",
                field="type",
            )
        return message

    def _accept_hello(self, hello: Hello) -> None:
        if self._token is not None:
            given = (hello.token or "").encode()
            if not hmac.compare_digest(given, self._token.encode()):
                self.state = State.CLOSED
                reason = "hello carries no token" if hello.token is None else "the token is wrong"
                raise ProtocolError(
                    ErrorCode.UNAUTHORIZED,
                    f"{reason}; this server requires one: set the token in the plugin's settings "
                    "(or --token / $SFUMATO_TOKEN for the CLI)",
                    field="token",
                )
        self.hello = hello
        self.state = State.READY
