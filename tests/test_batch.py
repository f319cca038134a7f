from fractions import Fraction

import numpy as np
import pytest

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError


def make_batch(dtype: type = np.uint8) -> FrameBatch:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, np.iinfo(dtype).max, (3, 5, 7, 3), dtype=dtype)
    return FrameBatch(frames, first_index=12, rate=Fraction(30000, 1001), meta={"stage": "upscale"})


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_is_lossless_and_self_describing(dtype: type) -> None:
    batch = make_batch(dtype)
    back = FrameBatch.from_bytes(batch.to_bytes())
    assert back.frames.dtype == dtype
    assert np.array_equal(back.frames, batch.frames)
    assert (back.first_index, back.rate, back.meta) == (12, Fraction(30000, 1001), {"stage": "upscale"})
    assert list(back.indices) == [12, 13, 14]
    assert back.timestamp(13) == Fraction(13 * 1001, 30000)


def test_corrupt_payload_is_detected() -> None:
    data = bytearray(make_batch().to_bytes())
    data[-1] ^= 0xFF
    with pytest.raises(StoreError, match="corrupt"):
        FrameBatch.from_bytes(bytes(data), what="batch k")


def test_truncated_batch_is_detected() -> None:
    data = make_batch().to_bytes()
    with pytest.raises(StoreError, match="truncated"):
        FrameBatch.from_bytes(data[:-10])
    with pytest.raises(StoreError, match="truncated"):
        FrameBatch.from_bytes(data[:5])


def test_foreign_bytes_and_other_formats_are_refused() -> None:
    with pytest.raises(StoreError, match="not a silkpurse frame batch"):
        FrameBatch.from_bytes(b"PNG\x00" + bytes(64))
    data = make_batch().to_bytes().replace(b"silkpurse-batch/2", b"silkpurse-batch/9")
    with pytest.raises(StoreError, match="silkpurse-batch/9"):
        FrameBatch.from_bytes(data)


def test_a_batch_is_bound_to_its_key() -> None:
    data = make_batch().to_bytes(key="job/c00000/upscale-ab/f00000008.safetensors")
    assert FrameBatch.from_bytes(data, key="job/c00000/upscale-ab/f00000008.safetensors").first_index == 12
    with pytest.raises(StoreError, match="written for key"):
        FrameBatch.from_bytes(data, key="job/c00000/upscale-ab/f00000016.safetensors")


def test_batches_are_standard_safetensors_files() -> None:
    from safetensors.numpy import load

    batch = make_batch(np.uint16)
    assert np.array_equal(load(batch.to_bytes())["frames"], batch.frames)


def test_invalid_frames_are_rejected() -> None:
    with pytest.raises(ValueError):
        FrameBatch(np.zeros((2, 4, 4), np.uint8), 0, Fraction(25))
    with pytest.raises(ValueError):
        FrameBatch(np.zeros((2, 4, 4, 3), np.float32), 0, Fraction(25))
