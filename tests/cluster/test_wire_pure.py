"""What crosses to a replica and back pickles whole: a job decoded from a frame (its arrays
are memoryviews into the frame, which pickle cannot take as they are) and a progress preview."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sfumato.protocol import Array, Job, Progress, decode_client_message, encode_bytes
from tests.protocol.strategies import FAST, arrays, jobs


@settings(FAST)
@given(jobs())
def test_a_job_as_the_server_decoded_it_pickles_back_equal(job: Job) -> None:
    frame = bytearray(encode_bytes(job))
    decoded = decode_client_message(frame)
    back = pickle.loads(pickle.dumps(decoded))
    assert back == decoded == job
    frame[:] = bytes(len(frame))  # the copy owns its bytes: the frame can be reused
    assert back == job


@settings(FAST)
@given(arrays())
def test_an_array_over_a_memoryview_pickles_its_bytes(array: Array) -> None:
    view = Array(array.dtype, array.shape, memoryview(bytearray(array.data)))
    back = pickle.loads(pickle.dumps(view))
    assert back == array and isinstance(back.data, bytes)


@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_a_preview_from_numpy_pickles(h: int, w: int, seed: int) -> None:
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    message = Progress("j", 1, 2, preview=Array.from_numpy(image))
    back = pickle.loads(pickle.dumps(message))
    assert back == message
    assert back.preview is not None and np.array_equal(back.preview.to_numpy(), image)
