"""The rate plan: counts, positions and batch ownership."""

from __future__ import annotations

from fractions import Fraction

import pytest

from silkpurse import timeline
from silkpurse.errors import OptionsError
from silkpurse_interpolator import timing
from silkpurse_interpolator.timing import Source

NTSC_FILM = Fraction(24000, 1001)


@pytest.mark.parametrize("multiplier", [2, 3, 4])
def test_multiplier_gives_m_times_n_frames_and_holds_the_last(multiplier: int) -> None:
    n = 10
    r_in = Fraction(25)
    r_out = timeline.output_rate(r_in, multiplier=multiplier)
    assert r_out == 25 * multiplier
    assert timeline.output_count(n, r_in, r_out) == multiplier * n
    plan = timing.plan_batch(0, n, n, r_in, r_out)
    assert [p.kind for p in plan[:multiplier]] == [Source.COPY] + [Source.BLEND] * (multiplier - 1)
    assert [p.t for p in plan[1:multiplier]] == [Fraction(k, multiplier) for k in range(1, multiplier)]
    # After the last input frame there is nothing to blend with: hold it.
    assert plan[-multiplier].kind is Source.COPY and plan[-multiplier].source == n - 1
    assert all(p.kind is Source.HOLD and p.source == n - 1 for p in plan[-multiplier + 1 :])


def test_ntsc_film_to_60_fps_count_and_positions() -> None:
    n = 1001
    r_out = timeline.output_rate(NTSC_FILM, fps="60")
    assert r_out == 60
    # 1001 frames at 24000/1001 fps last 1001 * 1001 / 24000 s = 2505.0025 output frames -> 2506.
    assert timeline.output_count(n, NTSC_FILM, r_out) == 2506
    plan = timing.plan_batch(0, n, n, NTSC_FILM, r_out)
    assert len(plan) == 2506
    # Output j sits at input position j * 400 / 1001.
    assert plan[1].source == 0 and plan[1].t == Fraction(400, 1001)
    assert plan[3].source == 1 and plan[3].t == Fraction(199, 1001)
    copies = [p.index for p in plan if p.kind is Source.COPY]
    assert copies == [0, 1001, 2002]  # the only exact coincidences of the two clocks
    assert plan[-1].source == 1000 and plan[-1].kind is Source.HOLD


def test_fps_accepts_exact_fractions_and_rejects_nonsense() -> None:
    assert timeline.output_rate(25, fps=Fraction(60000, 1001)) == Fraction(60000, 1001)
    assert timeline.output_rate(25, fps="30000/1001") == Fraction(30000, 1001)
    with pytest.raises(OptionsError):
        timeline.output_rate(25, fps=0)
    with pytest.raises(OptionsError):
        timeline.output_rate(25, fps="fast")
    with pytest.raises(OptionsError):
        timeline.output_rate(25, multiplier=0)
    with pytest.raises(OptionsError):
        timeline.output_rate(25, multiplier=2, fps=60)
    with pytest.raises(OptionsError, match="below the input"):
        timeline.output_rate(30, fps=24)


@pytest.mark.parametrize(
    ("r_in", "r_out"),
    [
        (Fraction(24), Fraction(48)),
        (NTSC_FILM, Fraction(60)),
        (Fraction(25), Fraction(75)),
        (Fraction(60), Fraction(24)),
    ],
)
@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 64])
def test_batches_cover_every_output_exactly_once(r_in: Fraction, r_out: Fraction, batch_size: int) -> None:
    n = 37
    owned: list[int] = []
    for first in range(0, n, batch_size):
        end = min(first + batch_size, n)
        for p in timing.plan_batch(first, end, n, r_in, r_out):
            assert first <= p.source < end  # an output belongs to the batch holding floor(p)
            owned.append(p.index)
        assert timeline.needs_next_frame(end, n) == (end < n)
    assert owned == list(range(timeline.output_count(n, r_in, r_out)))


def test_slowdown_plan_skips_frames_without_blending_past_the_end() -> None:
    plan = timing.plan_batch(0, 5, 5, Fraction(60), Fraction(24))
    assert [p.index for p in plan] == [0, 1]
    assert [(p.source, p.t) for p in plan] == [(0, 0), (2, Fraction(1, 2))]
