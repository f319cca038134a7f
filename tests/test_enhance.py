"""`silkpurse enhance` end to end on real camera footage, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import decode_rgb, psnr

from silkpurse.media.probe import probe


def enhance(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "silkpurse_cli", "enhance", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_plain_reencode_of_real_footage_is_faithful(real_footage: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    summary = enhance(str(real_footage), "-o", str(out), "--scale", "1", "--interpolate", "1")
    src, dst = probe(real_footage), probe(out)
    assert summary["frames_out"] == src.frame_count == dst.frame_count
    assert abs(dst.duration - src.duration) <= 1 / float(src.rate)
    assert [a.codec for a in dst.audio] == ["aac"]
    assert psnr(decode_rgb(real_footage), decode_rgb(out)) >= 35


def test_upscale_and_interpolate_real_footage(clip_with_audio: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    summary = enhance(str(clip_with_audio), "-o", str(out), "--scale", "2", "--interpolate", "2", "--batch-size", "5")
    src, dst = probe(clip_with_audio), probe(out)
    assert (dst.width, dst.height) == (2 * src.width, 2 * src.height)
    assert dst.rate == 2 * src.rate
    assert dst.frame_count == summary["frames_out"] == 2 * src.frame_count
    assert abs(dst.duration - src.duration) <= 1 / float(dst.rate) + 1e-3
    assert [a.codec for a in dst.audio] == ["aac"]
