"""Publishing outputs: one run per output (locked), unique temporary names that never touch an
input, a full disk reported as such with nothing left behind, and output names that are only
ever file names (never a protocol or an option). Through the real command line."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cli_testing import (
    assert_one_line_error,
    fill_leaving,
    hidden_leftovers,
    mount_tmpfs,
    run_cli,
    start_cli,
    unmount,
)
from tests.conftest import ClipFactory

from silkpurse.errors import OutputError
from silkpurse.media.probe import probe
from silkpurse.output import claim_output

REENCODE = ("--scale", "1", "--interpolate", "1", "-q")


@pytest.fixture(scope="module")
def small_clip(make_clip: ClipFactory) -> Path:
    """64x48, 10 fps, 1 s."""
    return make_clip("rel64.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=1", "-c:v", "libx264")


@pytest.fixture(scope="module")
def busy_clip(make_clip: ClipFactory) -> Path:
    """320x240, 30 fps, 2 s: upscaling it one frame per batch keeps a model thread busy for seconds."""
    return make_clip("rel320.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=2", "-c:v", "libx264")


@pytest.fixture(scope="module")
def medium_clip(make_clip: ClipFactory) -> Path:
    """160x120, 30 fps, 1 s."""
    return make_clip("rel160.mp4", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30:duration=1", "-c:v", "libx264")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (skipped with the reason where mounting is not allowed)."""
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "2m")
    try:
        yield disk
    finally:
        unmount(disk)


def frames_of(path: Path) -> int:
    return probe(path, limits=False).frame_count


# -- 1. two runs writing the same output ----------------------------------------------------------
def test_a_second_run_on_a_locked_output_fails_at_once_naming_the_holder(small_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    output.write_bytes(b"what the user had")
    with claim_output(output) as claim:  # this test process is "the other run"
        claim.temp.write_bytes(b"the other run's partial file")
        started = time.monotonic()
        result = run_cli("enhance", str(small_clip), "-o", str(output), *REENCODE)
        assert_one_line_error(result, 4, f"another silkpurse run is writing {output} (pid {os.getpid()})")
        assert time.monotonic() - started < 30
        assert claim.temp.read_bytes() == b"the other run's partial file"
    assert output.read_bytes() == b"what the user had"
    assert hidden_leftovers(tmp_path, "out") == []


@pytest.mark.slow
def test_two_concurrent_runs_on_one_output_one_wins_and_the_output_is_whole(
    medium_clip: Path, small_clip: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    first = start_cli(
        "enhance", str(medium_clip), "-o", str(output), "--scale", "2", "--interpolate", "1", "--batch-size", "1", "-q"
    )
    lock = tmp_path / ".out.mp4.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, "the first run ended before the second could start"
    second = run_cli("enhance", str(small_clip), "-o", str(output), *REENCODE)
    assert_one_line_error(second, 4, "another silkpurse run is writing", f"(pid {first.pid})")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert frames_of(output) == 30
    assert hidden_leftovers(tmp_path, "out") == []


def test_temporary_names_are_unique_per_run(tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    with claim_output(output) as claim:
        first = claim.temp
    with claim_output(output) as claim:
        second = claim.temp
    assert first != second
    assert first.name.startswith(".out.") and first.name.endswith(".partial.mp4")


# -- 3. an input named like the temporary or lock name ----------------------------------------------
def test_an_input_named_like_the_old_temporary_name_is_read_not_destroyed(small_clip: Path, tmp_path: Path) -> None:
    victim = tmp_path / ".victim.partial.mp4"  # e.g. a salvaged file of a killed run
    victim.write_bytes(small_clip.read_bytes())
    result = run_cli("enhance", str(victim), "-o", str(tmp_path / "victim.mp4"), *REENCODE)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == small_clip.read_bytes()
    assert frames_of(tmp_path / "victim.mp4") == 10


def test_an_input_named_like_the_lock_file_is_refused_and_kept(small_clip: Path, tmp_path: Path) -> None:
    victim = tmp_path / ".victim.mp4.lock"
    victim.write_bytes(small_clip.read_bytes())
    result = run_cli("enhance", str(victim), "-o", str(tmp_path / "victim.mp4"), *REENCODE)
    assert_one_line_error(result, 4, "has the name silkpurse uses for its lock file")
    assert victim.read_bytes() == small_clip.read_bytes()
    assert not (tmp_path / "victim.mp4").exists()


def test_a_claim_refuses_an_input_that_is_its_temporary_file(tmp_path: Path) -> None:
    output = tmp_path / "out.mp4"
    with (
        claim_output(output) as outer,
        pytest.raises(OutputError, match="temporary file"),
        claim_output(output, inputs=[outer.temp]),
    ):
        pass


# -- 2. a full disk ----------------------------------------------------------------------------------
def test_a_full_disk_is_reported_as_such_and_leaves_no_corrupt_output(
    busy_clip: Path, small_disk: Path, tmp_path: Path
) -> None:
    fill_leaving(small_disk, 48 * 1024)  # room to start, not to finish (lossless is large)
    output = small_disk / "out.mp4"
    result = run_cli("enhance", str(busy_clip), "-o", str(output), *REENCODE, "--crf", "0")
    assert_one_line_error(result, 4, f"the disk holding {output} is full")
    assert not output.exists()
    assert hidden_leftovers(small_disk, "out") == []


# -- 4. an error while a model thread computes ------------------------------------------------------
@pytest.mark.slow
def test_an_error_while_the_model_computes_exits_with_its_code_not_sigabrt(
    medium_clip: Path, small_disk: Path, tmp_path: Path
) -> None:
    # The encoder writes each chunk's segment in its scratch folder (under SILKPURSE_WORK_DIR)
    # while the model thread upscales the next batches (kept under --work-dir): with the scratch
    # disk full, the encoder fails in the main thread mid-computation.
    fill_leaving(small_disk, 4096)
    output = tmp_path / "out.mp4"
    args = ["--scale", "2", "--interpolate", "1", "--batch-size", "1", "--crf", "0", "-q"]
    args += ["--work-dir", str(tmp_path / "work")]
    result = run_cli("enhance", str(medium_clip), "-o", str(output), *args, env={"SILKPURSE_WORK_DIR": str(small_disk)})
    assert "terminate called" not in result.stderr
    assert_one_line_error(result, 7, "No space left on device")
    assert not output.exists() and hidden_leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("name", ["12:30.mp4", "pipe:1.mp4", "file:out.mp4", "-x.mp4", "-report.mp4"])
def test_output_names_are_file_names_never_protocols_or_options(small_clip: Path, tmp_path: Path, name: str) -> None:
    result = run_cli("enhance", "-o", name, *REENCODE, "--", str(small_clip), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert frames_of(tmp_path / name) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# -- 7. names longer than the filesystem allows ------------------------------------------------------
def test_an_output_name_too_long_for_the_filesystem_is_one_line(small_clip: Path, tmp_path: Path) -> None:
    output = tmp_path / ("o" * 300 + ".mp4")
    result = run_cli("enhance", str(small_clip), "-o", str(output), *REENCODE)
    assert_one_line_error(result, 4, "the output name is 304 bytes long", "Choose a shorter name")


def test_a_long_output_name_whose_temporary_name_would_be_too_long_still_works(
    small_clip: Path, tmp_path: Path
) -> None:
    output = tmp_path / ("o" * 245 + ".mp4")  # fits; ".NAME.<random>.partial.mp4" would not
    result = run_cli("enhance", str(small_clip), "-o", str(output), *REENCODE)
    assert result.returncode == 0, result.stderr
    assert frames_of(output) == 10
    assert [p.name for p in tmp_path.iterdir()] == [output.name]


# -- the image commands publish the same way ---------------------------------------------------------
def test_the_image_commands_lock_their_output_before_any_work(tmp_path: Path) -> None:
    from PIL import Image

    source = tmp_path / "in.png"
    Image.new("RGB", (16, 12), (200, 40, 40)).save(source)
    output = tmp_path / "out.png"
    with claim_output(output):
        upscale = run_cli("upscale", str(source), "-o", str(output), "--scale", "2", "--device", "cpu")
        between = run_cli("interpolate", str(source), str(source), "-o", str(output), "--device", "cpu")
    assert_one_line_error(upscale, 4, "another silkpurse run is writing")
    assert_one_line_error(between, 4, "another silkpurse run is writing")
    assert not output.exists()
