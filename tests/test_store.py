from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from silkpurse.batch import FrameBatch
from silkpurse.errors import StoreError
from silkpurse.store import LocalStore, job_keys, validate_key


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a/../b", "a//b", ".hidden", "a/.x", "a b", ""])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(StoreError, match="invalid batch key"):
        validate_key(key)


def test_keys_are_deterministic_and_chain_upstream_parameters() -> None:
    up = job_keys("abc123", "upscale", {"model": "m", "scale": 2})
    assert up == job_keys("abc123", "upscale", {"scale": 2, "model": "m"})
    assert up.batch(7) == f"abc123/upscale-{up.params_digest}/000007.spfb"
    other_up = job_keys("abc123", "upscale", {"model": "m", "scale": 4})
    assert up.then("interpolate", {"rate": "60/1"}) != other_up.then("interpolate", {"rate": "60/1"})


def test_local_store_round_trip_and_prefix_delete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "work")
    batch = FrameBatch(np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3), 0, Fraction(25))
    store.put_batch("job/stage-1/000000.spfb", batch)
    assert store.exists("job/stage-1/000000.spfb")
    assert np.array_equal(store.get_batch("job/stage-1/000000.spfb").frames, batch.frames)
    assert not list((tmp_path / "work" / "job" / "stage-1").glob(".*.part"))  # no temporary files left
    store.delete_prefix("job")
    assert not store.exists("job/stage-1/000000.spfb")
    with pytest.raises(StoreError, match="not in the store"):
        store.get("job/stage-1/000000.spfb")
