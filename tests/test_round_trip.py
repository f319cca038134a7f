"""Extract -> encode round trips through frame batches, segments and the join (`--scale 1 --interpolate 1`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import ClipFactory, decode_rgb, ffmpeg_psnr, psnr

from silkpurse.batch import FrameBatch
from silkpurse.media.codecs import EncodeOptions
from silkpurse.media.probe import VideoInfo, probe
from silkpurse.plan import JobOptions
from silkpurse_cli.embedded import Pipeline, RunOptions
from silkpurse_encoder.encode import SegmentWriter, write_segment
from silkpurse_extractor.extract import extract_batches


def transcode(source: Path, output: Path, batch_size: int = 7, **options: object) -> VideoInfo:
    """The product's own path at --scale 1 --interpolate 1: plan, extract, encode segments, join."""
    job = JobOptions(scale=1, interpolate=1, batch_size=batch_size, **options)  # type: ignore[arg-type]
    Pipeline(source, output, job, RunOptions(work_dir=output.parent / "work")).run()
    return probe(output)


def test_audio_rate_and_duration_survive(clip_with_audio: Path, tmp_path: Path) -> None:
    src = probe(clip_with_audio)
    out = transcode(clip_with_audio, tmp_path / "out.mp4")
    assert out.frame_count == src.frame_count
    assert out.rate == src.rate
    assert abs(out.duration - src.duration) <= 1 / float(src.rate)
    assert [a.codec for a in out.audio] == ["aac"]
    assert ffmpeg_psnr(clip_with_audio, tmp_path / "out.mp4") > 38


def test_odd_sizes_are_padded_by_edge_replication(make_clip: ClipFactory, real_footage: Path, tmp_path: Path) -> None:
    odd = make_clip("odd.mkv", "-i", str(real_footage), "-t", "0.5", "-vf", "scale=97:55", "-c:v", "ffv1")
    assert (probe(odd).width, probe(odd).height) == (97, 55)
    out = transcode(odd, tmp_path / "odd.mp4")
    assert (out.width, out.height) == (98, 56)
    decoded = decode_rgb(tmp_path / "odd.mp4")
    assert psnr(decode_rgb(odd), decoded[:, :55, :97]) > 30
    # The added column and row repeat the edge rather than adding black.
    assert np.abs(decoded[:, :55, 97].astype(int) - decoded[:, :55, 96]).mean() < 6


def test_ten_bit_source_stays_ten_bit(make_clip: ClipFactory, real_footage: Path, tmp_path: Path) -> None:
    ten = make_clip(
        "ten.mkv",
        "-i",
        str(real_footage),
        "-t",
        "0.5",
        "-vf",
        "scale=64:48",
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p10le",
        "-x265-params",
        "log-level=error:lossless=1",
    )
    frames = decode_rgb(ten)
    assert frames.dtype == np.uint16
    out = transcode(ten, tmp_path / "ten.mkv", codec="h265", crf=4)
    assert out.bit_depth == 10 and out.pix_fmt == "yuv420p10le"
    assert psnr(frames, decode_rgb(tmp_path / "ten.mkv"), peak=65535) > 40
    # 16-bit frames really carry the extra precision: more than 256 distinct levels per channel.
    assert len(np.unique(frames[..., 1])) > 256


def test_variable_frame_rate_becomes_constant_with_duration_kept(vfr_clip: Path, tmp_path: Path) -> None:
    src = probe(vfr_clip)
    out = transcode(vfr_clip, tmp_path / "cfr.mkv")
    assert src.vfr and not out.vfr
    assert out.frame_count == src.frame_count
    assert abs(out.duration - src.duration) <= 1 / float(src.rate) + 1e-3


def test_rotation_is_applied_to_the_pixels(rotated_clip: Path, tmp_path: Path) -> None:
    out = transcode(rotated_clip, tmp_path / "rot.mp4")
    assert (out.width, out.height, out.rotation) == (32, 64, 0)


@pytest.mark.parametrize(("matrix", "range_"), [("bt709", "tv"), ("smpte170m", "tv"), ("bt709", "pc")])
def test_colour_survives_a_round_trip(make_clip: ClipFactory, tmp_path: Path, matrix: str, range_: str) -> None:
    rgb = (0x30, 0x80, 0xC0)
    scale_matrix = "bt709" if matrix == "bt709" else "smpte170m"
    clip = make_clip(
        f"colour-{matrix}-{range_}.mp4",
        "-f",
        "lavfi",
        "-i",
        "color=c=0x3080C0:size=64x48:rate=10:duration=0.3",
        "-vf",
        f"scale=out_color_matrix={scale_matrix}:out_range={range_},format=yuv420p",
        "-c:v",
        "libx264",
        "-crf",
        "0",
        "-colorspace",
        matrix,
        "-color_range",
        range_,
    )
    decoded = decode_rgb(clip).reshape(-1, 3).mean(axis=0)
    assert np.allclose(decoded, rgb, atol=2.0), f"decoded {decoded} for {rgb}"
    out = transcode(clip, tmp_path / "colour.mp4", crf=0)
    assert (out.colour.matrix, out.colour.range) == (matrix, range_)
    assert np.allclose(decode_rgb(tmp_path / "colour.mp4").reshape(-1, 3).mean(axis=0), rgb, atol=2.0)


def test_subtitles_are_carried_and_converted_for_mp4(make_clip: ClipFactory, tmp_path: Path) -> None:
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    mkv = make_clip(
        "subs.mkv",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
        "-i",
        str(srt),
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-c:v",
        "libx264",
        "-c:a",
        "pcm_s16le",
        "-c:s",
        "srt",
    )
    as_mkv = transcode(mkv, tmp_path / "out.mkv")
    assert [s.codec for s in as_mkv.subtitles] == ["subrip"] and [a.codec for a in as_mkv.audio] == ["pcm_s16le"]
    as_mp4 = transcode(mkv, tmp_path / "out.mp4")
    assert [s.codec for s in as_mp4.subtitles] == ["mov_text"]
    assert [a.codec for a in as_mp4.audio] == ["aac"]  # MP4 cannot hold PCM: re-encoded


def test_failed_encode_leaves_no_segment(clip_with_audio: Path, tmp_path: Path) -> None:
    info = probe(clip_with_audio)

    def failing() -> Iterator[FrameBatch]:
        yield from extract_batches(info, 4)
        raise RuntimeError("stage crashed")

    writer = SegmentWriter(
        tmp_path / "segment.mp4",
        info,
        width=info.width,
        height=info.height,
        rate=info.rate,
        sixteen_bit=False,
        options=EncodeOptions(),
    )
    with pytest.raises(RuntimeError):
        write_segment(failing(), writer)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("codec", "preset", "expected"), [("h265", "ultrafast", "hevc"), ("av1", "12", "av1")])
def test_every_codec_encodes_a_playable_stream(
    clip_with_audio: Path, tmp_path: Path, codec: str, preset: str, expected: str
) -> None:
    out = transcode(clip_with_audio, tmp_path / "out.mkv", codec=codec, preset=preset)
    assert out.codec == expected
    assert out.frame_count == probe(clip_with_audio).frame_count
    assert psnr(decode_rgb(clip_with_audio), decode_rgb(tmp_path / "out.mkv")) > 30
