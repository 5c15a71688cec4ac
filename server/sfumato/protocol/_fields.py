"""Typed reading of decoded msgpack maps, with errors that name the field and the fix."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from . import refs
from .arrays import Array, DType, check_shape
from .errors import ErrorCode, ProtocolError
from .text import clip, echo, loggable

E = TypeVar("E", bound=Enum)
_MISSING: Any = object()


def _type_name(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


class Reader:
    """Reads one msgpack map. ``finish()`` rejects keys nobody asked for (they are typos or
    features this peer lacks, and silently ignoring either hides a mistake)."""

    def __init__(self, data: Any, path: str, blobs: memoryview | None = None) -> None:
        if not isinstance(data, dict):
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"{path or 'message'} must be a map, got {_type_name(data)}",
                field=path or None,
            )
        self._data = data
        self._path = path
        self._seen: set[str] = set()
        self._blobs = blobs

    def names(self) -> list[str]:
        return [str(k) for k in self._data]

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self._data and self._data[key] is not None:
            return self._data[key]
        if default is _MISSING:
            raise ProtocolError(
                ErrorCode.BAD_FIELD, f"{self._name(key)} is required", field=self._name(key)
            )
        return default

    def _bad(self, key: str, want: str, value: Any) -> ProtocolError:
        return ProtocolError(
            ErrorCode.BAD_FIELD,
            f"{self._name(key)} must be {want}, got {echo(value)}",
            field=self._name(key),
        )

    def text(self, key: str, default: Any = _MISSING, *, max_len: int | None = None) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        if max_len is not None and len(value) > max_len:
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"{self._name(key)} is {len(value)} characters; the limit is {max_len}, shorten it",
                field=self._name(key),
            )
        return value

    def integer(
        self, key: str, default: Any = _MISSING, *, lo: int, hi: int, want: str | None = None
    ) -> Any:
        """``want`` says what the field takes when the plain range would mislead (a side is
        a multiple of 8 up to max_image_side, checked later, not any integer up to 2**31)."""
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self._bad(key, want or f"an integer from {lo} to {hi}", value)
        return value

    def number(self, key: str, default: Any = _MISSING, *, lo: float, hi: float) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise self._bad(key, f"a number from {lo} to {hi}", value)
        return float(value)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def choice(self, key: str, kind: type[E], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)
            raise self._bad(key, f"one of {choices}", value) from None

    def items(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value

    def element(self, key: str, index: int) -> Reader:
        """A reader for item ``index`` of the list ``key`` (read it with :meth:`items` first)."""
        return Reader(self._data[key][index], f"{self._name(key)}[{index}]", self._blobs)

    def submap(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        return Reader(value, self._name(key), self._blobs)

    def arrays(self, key: str) -> tuple[Array, ...]:
        values = self.items(key)
        return tuple(
            read_array(v, f"{self._name(key)}[{i}]", self._blobs) for i, v in enumerate(values)
        )

    def byte_strings(self, key: str) -> tuple[memoryview, ...]:
        """A list of ``{offset, nbytes}`` references into the blob region."""
        out = []
        for i in range(len(self.items(key, []))):
            ref = self.element(key, i)
            offset = ref.integer("offset", lo=0, hi=2**63 - 1)
            nbytes = ref.integer("nbytes", lo=0, hi=2**63 - 1)
            ref.finish()
            available = 0 if self._blobs is None else self._blobs.nbytes
            if self._blobs is None or offset + nbytes > available:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"{self._name(key)}[{i}] needs bytes {offset}..{offset + nbytes} of the payload, "
                    f"but the message carries only {available}",
                    field=f"{self._name(key)}[{i}]",
                )
            out.append(self._blobs[offset : offset + nbytes])
        return tuple(out)

    def integers(self, key: str, *, lo: int, hi: int) -> tuple[int, ...]:
        values = self.items(key)
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in values
        ):
            raise self._bad(key, f"a list of integers from {lo} to {hi}", values)
        return tuple(values)

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def array(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default and default is not _MISSING:
            return value
        return read_array(value, self._name(key), self._blobs)

    def finish(self) -> None:
        extra = sorted(str(k) for k in self._data if k not in self._seen)
        if extra:
            where = self._path or "the message"
            name = self._name(clip(extra[0], 100))
            raise ProtocolError(
                ErrorCode.BAD_FIELD,
                f"unknown field {loggable(name)} in {where}; check the spelling or the server's "
                "capabilities",
                field=name,
            )


def read_array(ref: Any, name: str, blobs: memoryview | None) -> Array:
    """Resolve an array reference ``{dtype, shape, offset}`` into the message's blob region
    (or, by reference, through the decode's resolver: refs.py)."""
    if refs.is_ref(ref):
        return refs.resolve(ref, name)
    try:  # every fault of a reference is an array error (errors.py), wherever it lies
        r = Reader(ref, name)
        dtype = r.choice("dtype", DType)
        shape = check_shape(r.raw("shape"), field=name)
        offset = r.integer("offset", lo=0, hi=2**63 - 1)
        sha256 = r.raw("sha256", None)  # input_ref: keep these bytes under this hash
        r.finish()
    except ProtocolError as exc:
        raise ProtocolError(ErrorCode.BAD_ARRAY, exc.message, field=exc.field) from None
    h, w, c = shape
    nbytes = h * w * c * dtype.itemsize
    available = 0 if blobs is None else blobs.nbytes
    if offset + nbytes > available:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{name}: {dtype.value} {list(shape)} needs bytes {offset}..{offset + nbytes} of the "
            f"payload, but the message carries only {available}",
            field=name,
        )
    assert blobs is not None
    array = Array(dtype, shape, blobs[offset : offset + nbytes])
    if sha256 is not None:
        refs.offer(name, array, sha256)
    return array


class BlobWriter:
    """Collects array payloads while a header is built; each array becomes a reference."""

    def __init__(self, place: refs.Place | None = None) -> None:
        self.chunks: list[memoryview] = []
        self._offset = 0
        self._place = place  # the client's choice of by-reference arrays (refs.py)

    def ref(self, array: Array) -> dict[str, Any]:
        placed = self._place(array) if self._place is not None else None
        if placed is not None and placed.ref is not None:
            return placed.ref
        ref: dict[str, Any] = {"dtype": array.dtype.value, "shape": list(array.shape),
                               "offset": self._offset}  # fmt: skip
        if placed is not None and placed.sha256 is not None:
            ref["sha256"] = placed.sha256
        self._append(array.data)
        return ref

    def bytes_ref(self, data: bytes | memoryview) -> dict[str, Any]:
        """An opaque byte string (a file) in the blob region: ``{offset, nbytes}``."""
        ref = {"offset": self._offset, "nbytes": memoryview(data).nbytes}
        self._append(data)
        return ref

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.chunks.append(view)
        self._offset += view.nbytes
