"""The stage: batch-size independence, scene cuts and duplicates."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from silkpurse.batch import FrameBatch
from silkpurse.errors import InputError
from silkpurse_interpolator import scene
from silkpurse_interpolator.stage import InterpolatedBatch, interpolate_batch


def run_stream(  # type: ignore[no-untyped-def]
    frames: np.ndarray, batch_size: int, engine, r_out: Fraction, threshold: float = 0.12
) -> list[InterpolatedBatch]:
    n = len(frames)
    r_in = Fraction(24)
    out = []
    for first in range(0, n, batch_size):
        end = min(first + batch_size, n)
        nxt = frames[end] if end < n else None
        batch = FrameBatch(frames=frames[first:end], first_index=first, rate=r_in, meta={"stream": "test"})
        out.append(
            interpolate_batch(
                batch, nxt, total_frames=n, out_rate=r_out, interpolator=engine, scene_threshold=threshold
            )
        )
    return out


def joined(results: list[InterpolatedBatch]) -> tuple[np.ndarray, list[int]]:
    frames = np.concatenate([r.batch.frames for r in results])
    return frames, [j for r in results for j in r.batch.indices]


@pytest.mark.parametrize("r_out", [Fraction(48), Fraction(72), Fraction(60)])
def test_output_bytes_do_not_depend_on_batch_size(hdv3, moving_square, r_out: Fraction) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(7)
    reference, indices = joined(run_stream(clip, 7, hdv3, r_out))
    assert indices == list(range(len(reference)))
    for batch_size in (1, 2, 3):
        frames, idx = joined(run_stream(clip, batch_size, hdv3, r_out))
        assert idx == indices
        assert frames.tobytes() == reference.tobytes()


def test_output_batch_carries_index_rate_and_meta(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(6)
    results = run_stream(clip, 4, hdv3, Fraction(48))
    second = results[1].batch
    assert second.first_index == 8 and len(second) == 4 and second.rate == 48
    assert second.meta["stream"] == "test" and second.meta["interpolator"]["model"] == "rife-hdv3"
    # Copies are byte-exact inputs; blends are new frames.
    np.testing.assert_array_equal(results[0].batch.frames[2], clip[1])
    assert not np.array_equal(results[0].batch.frames[1], clip[0])


@pytest.mark.parametrize("batch_size", [1, 2, 3])  # 3: the cut pair straddles two batches
def test_hard_cut_is_held_not_blended_and_reported(hdv3, moving_square, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(6)
    other = 255 - moving_square(3, step=5)
    clip[3:6] = other  # a different shot starts at frame 3
    results = run_stream(clip, batch_size, hdv3, Fraction(96))  # 4x: t = 1/4, 1/2, 3/4 across the cut
    frames, _ = joined(results)
    assert [c for r in results for c in r.cuts] == [2]
    # Outputs 8..11 lie on [2, 3): t < 0.5 repeats frame 2, the rest repeat frame 3.
    for j, expect in zip(range(8, 12), (clip[2], clip[2], clip[3], clip[3]), strict=True):
        np.testing.assert_array_equal(frames[j], expect)
    assert scene.cut_score(clip[2], clip[3]) > 0.12 > scene.cut_score(clip[0], clip[1])


def test_duplicates_are_copied_without_the_network(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(4)
    clip[2] = clip[1]
    results = run_stream(clip, 4, hdv3, Fraction(48))
    r = results[0]
    assert r.duplicates == [1]
    np.testing.assert_array_equal(r.batch.frames[3], clip[1])
    assert r.interpolated == 2  # pairs (0,1) and (2,3); the held last frame needs none


def test_missing_next_frame_is_an_input_error(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(4)
    batch = FrameBatch(frames=clip[:2], first_index=0, rate=Fraction(24))
    with pytest.raises(InputError, match="next_frame"):
        interpolate_batch(batch, None, total_frames=4, out_rate=Fraction(48), interpolator=hdv3, scene_threshold=0.12)
    with pytest.raises(InputError, match="size"):
        interpolate_batch(
            batch, clip[2, :32], total_frames=4, out_rate=Fraction(48), interpolator=hdv3, scene_threshold=0.12
        )


def test_rate_reduction_leaves_some_batches_empty_but_loses_nothing(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    clip = moving_square(6)
    results = run_stream(clip, 1, hdv3, Fraction(10))  # 24 -> 10 fps
    frames, indices = joined(results)
    assert indices == [0, 1, 2]  # ceil(6 * 10 / 24) = 3
    assert any(len(r.batch) == 0 for r in results)
    whole, _ = joined(run_stream(clip, 6, hdv3, Fraction(10)))
    assert frames.tobytes() == whole.tobytes()
