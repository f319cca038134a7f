"""Engine behaviour: bisection for HDv3, copies at the ends, dtypes and odd sizes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from silkpurse_interpolator.engine import bisection_path, bisection_target


def test_quarter_step_is_bisection_of_the_midpoint(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2, step=4)
    mid = hdv3.interpolate(a[None], b[None], [0.5])[0]
    quarter = hdv3.interpolate(a[None], b[None], [0.25])[0]
    # HDv3 reaches t = 1/4 as the midpoint of (frame 0, midpoint); the engine keeps the
    # midpoint in float on the device, so compare with a tolerance of one code value.
    expected = hdv3.interpolate(a[None], mid[None], [0.5])[0]
    assert np.abs(quarter.astype(int) - expected.astype(int)).max() <= 2
    assert not np.array_equal(quarter, mid)


def test_non_dyadic_timesteps_round_to_sixteenths() -> None:
    assert bisection_target(1 / 3) == Fraction(5, 16)
    assert bisection_target(0.4) == Fraction(6, 16)
    assert bisection_target(0.01) == 0
    assert bisection_path(Fraction(3, 4)) == [(0, 1), (Fraction(1, 2), 1)]
    assert len(bisection_path(Fraction(5, 16))) == 4


def test_timesteps_at_the_ends_copy_the_inputs(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2)
    out = hdv3.interpolate(np.stack([a, a]), np.stack([b, b]), [0.0, 1.0])
    np.testing.assert_array_equal(out[0], a)
    np.testing.assert_array_equal(out[1], b)
    # HDv3 rounds t=0.01 to 0, so it is a copy too.
    np.testing.assert_array_equal(hdv3.interpolate(a[None], b[None], [0.01])[0], a)


def test_pairs_sharing_frames_share_bisection_work(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    frames = moving_square(2)
    together = hdv3.interpolate_indexed(frames, [(0, 1, 0.25), (0, 1, 0.5), (0, 1, 0.75)])
    alone = np.stack([hdv3.interpolate_indexed(frames, [(0, 1, t)])[0] for t in (0.25, 0.5, 0.75)])
    assert together.tobytes() == alone.tobytes()


def test_uint16_in_uint16_out_agrees_with_uint8(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a8, b8 = moving_square(2)
    a16, b16 = moving_square(2, dtype=np.uint16)
    out8 = hdv3.interpolate(a8[None], b8[None], [0.5])[0]
    out16 = hdv3.interpolate(a16[None], b16[None], [0.5])[0]
    assert out16.dtype == np.uint16
    assert np.abs(out16 / 257.0 - out8).max() <= 1.0


@pytest.mark.parametrize(("h", "w"), [(50, 70), (33, 97)])
def test_odd_sizes_are_padded_and_cropped_back(hdv3, moving_square, h: int, w: int) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2, size=128)[:, :h, :w]
    out = hdv3.interpolate(a[None], b[None], [0.5])
    assert out.shape == (1, h, w, 3) and out.dtype == np.uint8


def test_describe_reports_model_and_precision(hdv3) -> None:  # type: ignore[no-untyped-def]
    info = hdv3.describe()
    assert info["family"] == "IFNet-HDv3" and info["dtype"] == "float32" and info["device"] == "cpu"
    assert hdv3.multiple == 32 and not hdv3.supports_timestep
