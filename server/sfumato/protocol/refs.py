"""Arrays sent by reference instead of by bytes (capabilities ``input_ref`` and ``shm``,
docs/protocol.md 2.2). Sans-I/O like the rest of the protocol.

A reference cannot be turned into pixels by the codec: a ``{"sha256"}`` reference needs the
server's input cache, an ``{"shm"}`` reference needs a shared-memory segment mapped. Both are
I/O, so the codec hands each reference to a :class:`Resolver` that the caller installs for
the duration of one decode (:func:`resolving`); the service's resolver does the I/O. Without
one (a client decoding server messages, a server that lacks the capability) a reference is a
``bad_array`` error like any unknown key of an array reference.

Sending is the mirror image: :func:`~.codec.encode` takes a ``place`` callable that may put a
:class:`Placed` reference where the bytes would go (client.py decides which arrays).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from .arrays import Array, DType, check_shape
from .errors import ErrorCode, ProtocolError

SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# A client's segment: its pid (so a server can sweep segments of clients that died) and 64
# random bits (so no client can name another's). Nothing else may be opened or unlinked.
SHM_NAME = re.compile(r"sfumato-[0-9]{1,10}-[0-9a-f]{16}\Z")
MIN_REF_BYTES = 4096  # smaller arrays travel as bytes: a reference would save nothing


@dataclass(frozen=True)
class HashRef:
    """``{"sha256", "dtype", "shape"}``: an array this client sent before (input_ref)."""

    sha256: str
    dtype: DType
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class ShmRef:
    """``{"shm", "offset", "dtype", "shape"}``: bytes in the client's shared memory (shm)."""

    shm: str
    offset: int
    dtype: DType
    shape: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        h, w, c = self.shape
        return h * w * c * self.dtype.itemsize


class Resolver(Protocol):
    """What a server installs while it decodes one client message."""

    def resolve(self, field: str, ref: HashRef | ShmRef) -> Array:
        """The array ``ref`` names; raises ProtocolError (``unknown_input`` on a cache miss)."""

    def offer(self, field: str, array: Array, sha256: str) -> None:
        """An inline array the client asks the server to keep under ``sha256``."""

    def finish(self) -> None:
        """The message is decoded (or refused): release what resolving it held."""


_resolver: ContextVar[Resolver | None] = ContextVar("sfumato_resolver", default=None)


@contextmanager
def resolving(resolver: Resolver | None) -> Iterator[None]:
    """Decode with ``resolver`` answering array references (this thread/task only)."""
    token = _resolver.set(resolver)
    try:
        yield
    finally:
        _resolver.reset(token)


def is_ref(ref: Any) -> bool:
    """Whether an array reference map names its bytes elsewhere (no ``offset`` in the payload
    alone): ``shm`` always, ``sha256`` without ``offset``."""
    return isinstance(ref, dict) and ("shm" in ref or ("sha256" in ref and "offset" not in ref))


def resolve(ref: dict[Any, Any], name: str) -> Array:
    """Read a by-reference map and ask the installed resolver for its array."""
    parsed = parse(ref, name)
    resolver = _resolver.get()
    if resolver is None:
        key = "shm" if isinstance(parsed, ShmRef) else "sha256"
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{name}: this peer takes no array by {key} reference (capability "
            f"{'shm' if key == 'shm' else 'input_ref'} not announced); send the bytes",
            field=name,
        )
    return resolver.resolve(name, parsed)


def offer(name: str, array: Array, sha256: Any) -> None:
    """An inline array sent with ``sha256``: checked, then offered to the resolver."""
    resolver = _resolver.get()
    if resolver is None:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{name}: unknown key 'sha256' in an array reference (capability input_ref not "
            "announced); leave it out",
            field=name,
        )
    resolver.offer(name, array, _sha(sha256, name))


def parse(ref: dict[Any, Any], name: str) -> HashRef | ShmRef:
    """The typed form of a by-reference map; every fault is ``bad_array`` naming ``name``."""
    allowed = {"shm", "offset", "dtype", "shape"} if "shm" in ref else {"sha256", "dtype", "shape"}
    extra = sorted(str(k) for k in ref if k not in allowed)
    if extra:
        raise _bad(name, f"unknown key {extra[0][:50]!r} in a by-reference array; leave it out")
    try:
        dtype = DType(ref.get("dtype"))
    except ValueError:
        raise _bad(name, "dtype must be one of " + ", ".join(d.value for d in DType)) from None
    shape = check_shape(ref.get("shape"), field=name)
    if "shm" not in ref:
        return HashRef(_sha(ref.get("sha256"), name), dtype, shape)
    segment, offset = ref.get("shm"), ref.get("offset")
    if not isinstance(segment, str) or not SHM_NAME.fullmatch(segment):
        raise _bad(name, "shm must name a segment sfumato-<pid>-<16 hex digits> (client.py)")
    if type(offset) is not int or not 0 <= offset < 2**63:
        raise _bad(name, "offset must be an integer ≥ 0 (the array's first byte in the segment)")
    return ShmRef(segment, offset, dtype, shape)


def _sha(value: Any, name: str) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise _bad(name, "sha256 must be 64 lowercase hex digits, the hash of the array's bytes")
    return value


def _bad(name: str, text: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_ARRAY, f"{name}: {text}", field=name)


@dataclass(frozen=True)
class Placed:
    """Where an encoder puts one array: ``ref`` replaces the bytes (a by-reference map), or
    the bytes go inline and ``sha256`` asks the server to keep them under that hash."""

    ref: dict[str, Any] | None = None
    sha256: str | None = None


Place = Callable[[Array], Placed | None]


def hash_ref(array: Array, sha256: str) -> dict[str, Any]:
    return {"sha256": sha256, "dtype": array.dtype.value, "shape": list(array.shape)}


def shm_ref(array: Array, segment: str, offset: int) -> dict[str, Any]:
    return {"shm": segment, "offset": offset, "dtype": array.dtype.value,
            "shape": list(array.shape)}  # fmt: skip
