"""Arrays on the wire: dtype, shape and raw little-endian bytes, row 0 at the top.

An :class:`Array` holds a reference to its bytes (often a ``memoryview`` into the received
frame), so decoding never copies pixels. numpy is optional: it is imported only by
:meth:`Array.from_numpy` and :meth:`Array.to_numpy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from .errors import ErrorCode, ProtocolError
from .text import echo

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


class DType(str, Enum):
    """The element types the protocol carries, with their numpy spelling (little-endian)."""

    UINT8 = "uint8"
    UINT16 = "uint16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self]

    @property
    def numpy_str(self) -> str:
        return _NUMPY[self]


_ITEMSIZE = {DType.UINT8: 1, DType.UINT16: 2, DType.FLOAT16: 2, DType.FLOAT32: 4}
_NUMPY = {DType.UINT8: "|u1", DType.UINT16: "<u2", DType.FLOAT16: "<f2", DType.FLOAT32: "<f4"}


@dataclass(frozen=True, eq=False)
class Array:
    """An H×W×C array (always three dimensions on the wire) and its raw bytes."""

    dtype: DType
    shape: tuple[int, int, int]
    data: bytes | bytearray | memoryview

    def __post_init__(self) -> None:
        check_shape(self.shape, field="array")
        expected = self.nbytes
        got = memoryview(self.data).nbytes
        if got != expected:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"array of {self.dtype.value} {list(self.shape)} needs {expected} bytes, got {got}",
                field="array",
            )

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def channels(self) -> int:
        return self.shape[2]

    @property
    def nbytes(self) -> int:
        h, w, c = self.shape
        return h * w * c * self.dtype.itemsize

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Array):
            return NotImplemented
        return (
            self.dtype == other.dtype
            and self.shape == other.shape
            and memoryview(self.data).cast("B") == memoryview(other.data).cast("B")
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type[Array], tuple[DType, tuple[int, int, int], bytes]]:
        """Pickle with a copy of the bytes (a memoryview into a received frame cannot be
        pickled): jobs and previews cross to engine replicas on a Ray cluster this way."""
        return (Array, (self.dtype, self.shape, memoryview(self.data).tobytes()))

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> Array:
        """Wrap a 2-D or 3-D numpy array; 2-D becomes H×W×1. Copies only if not contiguous."""
        import numpy as np

        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"arrays are H×W or H×W×C, got {array.ndim} dimensions {array.shape}",
            )
        try:
            dtype = DType(array.dtype.name)
        except ValueError:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"dtype {array.dtype.name} is not carried; use one of "
                + ", ".join(d.value for d in DType),
            ) from None
        little = np.ascontiguousarray(array, dtype=np.dtype(dtype.numpy_str))
        h, w, c = little.shape
        return cls(dtype, (int(h), int(w), int(c)), memoryview(little).cast("B"))  # type: ignore[arg-type]

    def to_numpy(self) -> np.ndarray:
        """A read-only numpy view of the bytes (no copy)."""
        import numpy as np

        view = np.frombuffer(self.data, dtype=np.dtype(self.dtype.numpy_str))
        return view.reshape(self.shape)


def check_shape(shape: Any, *, field: str) -> tuple[int, int, int]:
    """Validate an [H, W, C] shape; C is 1 to 4."""
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 3
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
    ):
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{field}: shape must be [height, width, channels], got {echo(shape)}",
            field=field,
        )
    h, w, c = shape
    if h < 1 or w < 1 or not 1 <= c <= 4:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{field}: shape {echo(list(shape))} needs height and width ≥ 1 and 1–4 channels",
            field=field,
        )
    return (h, w, c)
