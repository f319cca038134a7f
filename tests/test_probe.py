from fractions import Fraction
from pathlib import Path

import pytest
from tests.conftest import ClipFactory

from silkpurse.errors import InputError
from silkpurse.media.probe import probe


def test_exact_rational_rate_frames_duration_and_audio(clip_with_audio: Path) -> None:
    info = probe(clip_with_audio)
    assert info.rate == Fraction(30000, 1001)
    assert info.frame_count == 30
    assert info.duration == pytest.approx(30 * 1001 / 30000, abs=1e-3)
    assert not info.vfr
    assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 2, 48000)]
    assert info.to_json()["rate"] == "30000/1001"


def test_variable_frame_rate_is_detected_and_given_a_constant_rate(vfr_clip: Path) -> None:
    info = probe(vfr_clip)
    assert info.vfr
    assert info.rate == 30
    assert info.frame_count == round(info.duration * 30)


def test_rotation_swaps_display_size(rotated_clip: Path) -> None:
    info = probe(rotated_clip)
    assert (info.coded_width, info.coded_height) == (64, 32)
    assert (info.width, info.height) == (32, 64)
    assert info.rotation in (90, 270)


def test_ten_bit_and_colour_tags(make_clip: ClipFactory) -> None:
    clip = make_clip(
        "tenbit.mkv",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=25:duration=0.4",
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p10le",
        "-x265-params",
        "log-level=error",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
    )
    info = probe(clip)
    assert info.bit_depth == 10
    assert (info.colour.matrix, info.colour.range, info.colour.guessed) == ("bt709", "tv", False)


def test_untagged_sd_video_is_treated_as_bt601(clip_with_audio: Path) -> None:
    colour = probe(clip_with_audio).colour
    assert colour.matrix == "smpte170m" and colour.guessed


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "empty"), (b"hello, this is text\n" * 20, "not a readable video")],
)
def test_bad_inputs_are_clear_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "in.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        probe(path)


def test_audio_only_file_has_no_video_stream(make_clip: ClipFactory) -> None:
    audio = make_clip("tone.m4a", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac")
    with pytest.raises(InputError, match="no video stream"):
        probe(audio)
