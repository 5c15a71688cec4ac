"""Arrays: the H×W×C shape rule, numpy interop for every dtype, and zero-copy decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfumato.protocol import (
    Array,
    DType,
    ErrorCode,
    Job,
    ProtocolError,
    Result,
    Task,
    decode_client_message,
    decode_server_message,
    encode,
    encode_bytes,
)

from .strategies import FAST, arrays


@pytest.mark.parametrize(
    ("dtype", "itemsize", "numpy"),
    [
        (DType.UINT8, 1, np.uint8),
        (DType.UINT16, 2, np.uint16),
        (DType.FLOAT16, 2, np.float16),
        (DType.FLOAT32, 4, np.float32),
    ],
)
def test_dtypes(dtype: DType, itemsize: int, numpy: type) -> None:
    assert dtype.itemsize == itemsize == np.dtype(numpy).itemsize
    assert np.dtype(dtype.numpy_str) == np.dtype(numpy).newbyteorder("<")


@pytest.mark.parametrize(
    "shape", [(0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 5), (-1, 1, 1), (1, 1), (1, 1, 1, 1)]
)
def test_shape_rule(shape: tuple[int, ...]) -> None:
    with pytest.raises(ProtocolError) as info:
        Array(DType.UINT8, shape, b"\0")  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.BAD_ARRAY


@pytest.mark.parametrize("nbytes", [11, 13])
def test_byte_length_must_match(nbytes: int) -> None:
    with pytest.raises(ProtocolError) as info:
        Array(DType.UINT16, (2, 1, 3), bytes(nbytes))
    assert info.value.code is ErrorCode.BAD_ARRAY
    Array(DType.UINT16, (2, 1, 3), bytes(12))


def test_equality_is_by_value() -> None:
    a = Array(DType.UINT8, (1, 2, 1), b"\x01\x02")
    assert a == Array(DType.UINT8, (1, 2, 1), memoryview(bytearray(b"\x01\x02")))
    assert a != Array(DType.UINT8, (1, 2, 1), b"\x01\x03")
    assert a != Array(DType.UINT8, (2, 1, 1), b"\x01\x02")
    assert a != Array(DType.UINT16, (1, 1, 1), b"\x01\x02")
    with pytest.raises(TypeError):
        hash(a)


@FAST
@given(arrays())
def test_numpy_round_trip(a: Array) -> None:
    array = a.to_numpy()
    assert array.shape == a.shape and array.dtype == np.dtype(a.dtype.numpy_str)
    assert Array.from_numpy(array) == a


@FAST
@given(
    st.sampled_from(["<u2", ">u2", "<f2", ">f2", "<f4", ">f4", "u1"]),
    st.integers(1, 5),
    st.integers(1, 5),
)
def test_from_numpy_writes_little_endian(dtype: str, h: int, w: int) -> None:
    values = np.arange(h * w * 3).reshape(h, w, 3).astype(dtype)
    a = Array.from_numpy(values)
    assert bytes(a.data) == values.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    assert np.array_equal(a.to_numpy(), values)


def test_from_numpy_layout() -> None:
    """Row 0 is the top row, C order: a transposed (Fortran-order) view is copied to C order."""
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    a = Array.from_numpy(pixels)
    assert bytes(a.data)[:3] == bytes([0, 1, 2])  # top-left pixel first
    assert bytes(a.data)[12:15] == bytes([12, 13, 14])  # then row 1 starts
    t = np.asfortranarray(pixels)
    assert Array.from_numpy(t) == a
    assert np.shares_memory(Array.from_numpy(pixels).to_numpy(), pixels)  # contiguous: no copy


def test_from_numpy_2d_becomes_one_channel() -> None:
    mask = np.full((3, 2), 255, np.uint8)
    assert Array.from_numpy(mask).shape == (3, 2, 1)


@pytest.mark.parametrize(
    "array",
    [np.zeros((2, 2, 3), np.int32), np.zeros((2, 2, 3), np.float64), np.zeros(4, np.uint8),
     np.zeros((1, 1, 1, 1), np.uint8), np.zeros((2, 2, 3), bool)],
    ids=["int32", "float64", "1d", "4d", "bool"],
)  # fmt: skip
def test_from_numpy_refuses(array: np.ndarray) -> None:
    with pytest.raises(ProtocolError) as info:
        Array.from_numpy(array)
    assert info.value.code is ErrorCode.BAD_ARRAY


# ----------------------------------------------------------------------------- zero copy


def test_decoded_image_is_a_view_of_the_received_buffer() -> None:
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    mask = np.full((4, 5), 255, np.uint8)
    wire = encode_bytes(
        Job("j1", Task.INPAINT, image=Array.from_numpy(image), mask=Array.from_numpy(mask))
    )
    job = decode_client_message(wire)
    assert isinstance(job, Job) and job.image is not None and job.mask is not None
    assert isinstance(job.image.data, memoryview) and job.image.data.obj is wire
    received = np.frombuffer(wire, np.uint8)
    assert np.shares_memory(job.image.to_numpy(), received)
    assert np.shares_memory(job.mask.to_numpy(), received)
    assert np.array_equal(job.image.to_numpy(), image)
    assert np.array_equal(job.mask.to_numpy()[:, :, 0], mask)
    assert not job.image.to_numpy().flags.writeable  # bytes are immutable: no accidental edits


def test_decoded_result_images_view_a_bytearray_too() -> None:
    """A transport that reassembles fragments into a bytearray gets views, not copies."""
    images = (Array(DType.FLOAT32, (2, 2, 1), bytes(16)), Array(DType.UINT8, (1, 1, 3), b"abc"))
    received = bytearray(encode_bytes(Result("j1", Task.GENERATE, images, (1, 2), "m")))
    result = decode_server_message(received)
    assert isinstance(result, Result)
    for a in result.images:
        assert isinstance(a.data, memoryview) and a.data.obj is received
    received[-1] = ord("z")
    assert bytes(result.images[1].data) == b"abz"


def test_float_arrays_keep_their_bits() -> None:
    """Round trips are bitwise: NaN payloads and -0.0 survive."""
    values = np.array([np.nan, -0.0, np.inf, 1e-45], np.float32).reshape(1, 4, 1)
    a = Array.from_numpy(values)
    decoded = decode_server_message(encode_bytes(Result("j1", Task.GENERATE, (a,), (0,), "m")))
    assert isinstance(decoded, Result)
    assert decoded.images[0].to_numpy().tobytes() == values.tobytes()
    assert bytes(encode(Result("j1", Task.GENERATE, (a,), (0,), "m"))[1]) == values.tobytes()
