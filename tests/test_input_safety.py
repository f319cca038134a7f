"""Inputs are only ever the one local file named, read as a real container: no playlists, lists
of other files, protocols or options; limits are checked when probing, before any work; bad
settings and unwritable model folders are one-line errors. Through the real command line."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from tests.cli_testing import assert_one_line_error, mount_tmpfs, run_cli, unmount
from tests.conftest import ClipFactory

from silkpurse.media.probe import probe

REENCODE = ("--scale", "1", "--interpolate", "1", "-q")


@pytest.fixture(scope="module")
def small_clip(make_clip: ClipFactory) -> Path:
    """64x48, 10 fps, 1 s."""
    return make_clip("rel64.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1", "-c:v", "libx264")


@pytest.fixture(scope="module")
def other_clip(make_clip: ClipFactory) -> Path:
    """32x32, 10 fps, 0.5 s: the file a hostile name would make silkpurse read instead."""
    return make_clip("other32.mp4", "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10:duration=0.5", "-c:v", "libx264")


def size_of(path: Path) -> tuple[int, int]:
    info = probe(path, limits=False)
    return info.width, info.height


# -- 6. playlists, lists and protocol names --------------------------------------------------------
def test_an_hls_playlist_named_like_a_video_is_refused(other_clip: Path, tmp_path: Path) -> None:
    talk = tmp_path / "talk.mp4"
    talk.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{other_clip}\n#EXT-X-ENDLIST\n")
    result = run_cli("enhance", str(talk), "-o", str(tmp_path / "out.mp4"), *REENCODE)
    assert_one_line_error(result, 3, "is a hls file, which silkpurse does not read")
    assert not (tmp_path / "out.mp4").exists()


def test_an_ffconcat_list_named_like_a_video_is_refused(other_clip: Path, tmp_path: Path) -> None:
    talk = tmp_path / "talk.mp4"
    talk.write_text(f"ffconcat version 1.0\nfile '{other_clip}'\n")
    result = run_cli("enhance", str(talk), "-o", str(tmp_path / "out.mp4"), *REENCODE)
    assert_one_line_error(result, 3, "is a concat file, which silkpurse does not read")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name", ["file:x.mp4", "pipe:0.mp4", "-i.mp4", "-report.mp4", "12:30.mp4"])
def test_input_names_are_file_names_never_protocols_or_options(
    small_clip: Path, other_clip: Path, tmp_path: Path, name: str
) -> None:
    (tmp_path / name).write_bytes(small_clip.read_bytes())
    (tmp_path / "x.mp4").write_bytes(other_clip.read_bytes())  # what "file:x.mp4" would read as a URL
    result = run_cli("enhance", "-o", "out.mp4", *REENCODE, "--", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert size_of(tmp_path / "out.mp4") == (64, 48)
    assert not (tmp_path / "report").exists() and not list(tmp_path.glob("ffmpeg-*.log"))


def test_a_dash_name_given_as_a_relative_path_works(small_clip: Path, tmp_path: Path) -> None:
    (tmp_path / "-i.mp4").write_bytes(small_clip.read_bytes())
    result = run_cli("enhance", "./-i.mp4", "-o", "./-report.mp4", *REENCODE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert size_of(tmp_path / "-report.mp4") == (64, 48)


# -- 5. limits, checked when probing ---------------------------------------------------------------
@pytest.fixture(scope="module")
def timestamp_gap(make_clip: ClipFactory) -> Path:
    """A 3 KB MKV of 5 frames whose last frame is 100000 s after the others."""
    return make_clip(
        "gap.mkv",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=rate=10:size=64x48",
        "-frames:v",
        "5",
        "-vf",
        "setpts='if(gte(N,4),PTS+100000/TB,PTS)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
    )


def test_a_tiny_file_with_a_huge_timestamp_gap_is_refused_at_once(timestamp_gap: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("enhance", str(timestamp_gap), "-o", str(tmp_path / "out.mp4"), *REENCODE)
    assert_one_line_error(result, 3, "lasts 100000 s, over the limit of 86400 s", "SILKPURSE_MAX_DURATION_S")
    allowed = {"SILKPURSE_MAX_DURATION_S": "1e9"}
    result = run_cli("enhance", str(timestamp_gap), "-o", str(tmp_path / "out.mp4"), *REENCODE, env=allowed)
    assert_one_line_error(result, 3, "would make 1000005 at a constant 10 fps", "SILKPURSE_MAX_VFR_EXPANSION")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out.mp4").exists()


def test_the_frame_limit_is_checked_before_any_work(small_clip: Path, tmp_path: Path) -> None:
    result = run_cli(
        "enhance", str(small_clip), "-o", str(tmp_path / "out.mp4"), *REENCODE, env={"SILKPURSE_MAX_FRAMES": "5"}
    )
    assert_one_line_error(result, 3, "yields 10 frames, over the limit of 5 frames", "SILKPURSE_MAX_FRAMES")


def test_a_video_declaring_huge_frames_is_refused_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.y4m"  # a header promising 16000x16000 frames, 1 KB of data
    big.write_bytes(b"YUV4MPEG2 W16000 H16000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1024))
    started = time.monotonic()
    result = run_cli("enhance", str(big), "-o", str(tmp_path / "out.mp4"), *REENCODE)
    assert_one_line_error(result, 3, "has 16000x16000 frames, over the limit", "SILKPURSE_MAX_PIXELS")
    assert time.monotonic() - started < 30


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # Rows of zeros compress to almost nothing: a few hundred KB declares gigabytes of pixels.
    rows = zlib.compress(bytes((width * 3 + 1) * 64), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize("command", ["upscale", "interpolate"])
def test_the_image_commands_refuse_a_huge_png_by_its_header(tmp_path: Path, command: str) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_declaring(16000, 16000))
    inputs = [str(big)] if command == "upscale" else [str(big), str(big)]
    result = run_cli(command, *inputs, "-o", str(tmp_path / "out.png"), "--device", "cpu")
    assert_one_line_error(result, 3, "has 16000x16000 frames, over the limit", "SILKPURSE_MAX_PIXELS")
    assert not (tmp_path / "out.png").exists()


def test_a_time_lapse_of_one_frame_an_hour_probes(make_clip: ClipFactory) -> None:
    lapse = make_clip(
        "timelapse.mp4", "-f", "lavfi", "-i", "testsrc2=rate=1/3600:size=64x48", "-frames:v", "3", "-c:v", "libx264"
    )
    result = run_cli("probe", str(lapse))
    assert result.returncode == 0, result.stderr
    assert '"rate": "1/3600"' in result.stdout and '"frame_count": 3' in result.stdout


# -- 7. settings and folders -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SILKPURSE_BATCH_SIZE", "abc", "SILKPURSE_BATCH_SIZE=abc is invalid"),
        ("SILKPURSE_BATCH_SIZE", "0", "SILKPURSE_BATCH_SIZE=0 is invalid"),
        ("SILKPURSE_DEVICE", "tpu", "SILKPURSE_DEVICE=tpu is invalid"),
        ("SILKPURSE_MAX_PIXELS", "lots", "SILKPURSE_MAX_PIXELS=lots is invalid"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_its_variable(
    small_clip: Path, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    result = run_cli("enhance", str(small_clip), "-o", str(tmp_path / "out.mp4"), *REENCODE, env={variable: value})
    assert_one_line_error(result, 2, message, f"Fix or unset {variable}")
    assert not (tmp_path / "out.mp4").exists()


def test_a_models_folder_that_is_a_file_is_one_line(small_clip: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.write_text("not a folder")
    result = run_cli(
        "enhance",
        str(small_clip),
        "-o",
        str(tmp_path / "out.mp4"),
        "--scale",
        "2",
        "--interpolate",
        "1",
        "-q",
        env={"SILKPURSE_MODELS_DIR": str(models)},
    )
    assert_one_line_error(result, 5, "cannot write model weights into", "SILKPURSE_MODELS_DIR")


def test_a_read_only_models_folder_is_one_line(small_clip: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    mount_tmpfs(models, "1m", "ro")
    try:
        result = run_cli(
            "upscale",
            str(small_clip),
            "-o",
            str(tmp_path / "out.mp4"),
            "--scale",
            "2",
            "-q",
            env={"SILKPURSE_MODELS_DIR": str(models)},
        )
    finally:
        unmount(models)
    assert_one_line_error(result, 5, "cannot write model weights into", "Read-only file system")


def test_an_input_name_too_long_for_the_filesystem_is_one_line(tmp_path: Path) -> None:
    result = run_cli("enhance", str(tmp_path / ("i" * 300 + ".mp4")), "-o", str(tmp_path / "out.mp4"), *REENCODE)
    assert_one_line_error(result, 3, "File name too long")
