from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError
from silkpurse.store import LocalStore, validate_key


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a/../b", "a//b", ".hidden", "a/.x", "a b", ""])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(StoreError, match="invalid batch key"):
        validate_key(key)


def test_local_store_round_trip_and_prefix_delete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "work")
    batch = FrameBatch(np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3), 0, Fraction(25))
    store.put_batch("job/stage-1/f00000000.safetensors", batch)
    assert store.exists("job/stage-1/f00000000.safetensors")
    assert np.array_equal(store.get_batch("job/stage-1/f00000000.safetensors").frames, batch.frames)
    assert not list((tmp_path / "work" / "job" / "stage-1").glob(".*.part"))  # no temporary files left
    store.delete_prefix("job")
    assert not store.exists("job/stage-1/f00000000.safetensors")
    with pytest.raises(StoreError, match="not in the store"):
        store.get("job/stage-1/f00000000.safetensors")


def test_a_batch_stored_under_another_key_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "work")
    batch = FrameBatch(np.zeros((1, 4, 4, 3), np.uint8), 0, Fraction(25))
    store.put_batch("job/up-1/f00000000.safetensors", batch)
    store.path("job/up-1/f00000008.safetensors").write_bytes(store.get("job/up-1/f00000000.safetensors"))
    with pytest.raises(StoreError, match="written for key"):
        store.get_batch("job/up-1/f00000008.safetensors")
