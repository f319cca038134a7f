"""The architecture's dependency rules, checked on the installed code (import-linter checks
the source in CI too): the extractor and encoder run without torch, the core without any stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCK_TORCH = (
    "import sys\n"
    "class NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is blocked in this test')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)


def test_extractor_and_encoder_run_a_job_without_torch(clip_with_audio: Path, tmp_path: Path) -> None:
    """A plain re-encode (no model) goes through plan, extract, encode and join with torch blocked."""
    code = BLOCK_TORCH + (
        "from pathlib import Path\n"
        "from silkpurse import tasks\n"
        "from silkpurse.files import sha256_of\n"
        "from silkpurse.media.probe import probe, count_frames\n"
        "from silkpurse.plan import JobOptions, build_plan\n"
        "from silkpurse.store import LocalStore\n"
        "from silkpurse_extractor.stage import extract\n"
        "from silkpurse_encoder.stage import encode_segment, join_segments\n"
        f"source, out = Path({str(clip_with_audio)!r}), Path({str(tmp_path / 'out.mp4')!r})\n"
        "info = probe(source)\n"
        "plan = build_plan(info, sha256_of(source), JobOptions(scale=1, interpolate=1, chunk_frames=12),\n"
        "                  upscaler=None, interpolator=None)\n"
        f"store = LocalStore(Path({str(tmp_path / 'work')!r}))\n"
        "for chunk in plan.chunks:\n"
        "    extract(tasks.extract_task(plan, plan.step(f'{chunk.name}/extract'), info), store)\n"
        "    encode_segment(tasks.encode_task(plan, plan.step(f'{chunk.name}/encode'), info), store)\n"
        "join_segments(tasks.join_task(plan, plan.step('join'), info), store, out)\n"
        "assert 'torch' not in sys.modules\n"
        "print(count_frames(out))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "30"


def test_the_core_imports_no_stage_and_no_torch() -> None:
    code = (
        "import sys, pkgutil, importlib, silkpurse\n"
        "for m in pkgutil.walk_packages(silkpurse.__path__, 'silkpurse.'):\n"
        "    if not m.name.startswith('silkpurse.nn'):\n"
        "        importlib.import_module(m.name)\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in\n"
        "    ('torch', 'silkpurse_extractor', 'silkpurse_encoder', 'silkpurse_upscaler', 'silkpurse_interpolator',\n"
        "     'silkpurse_cli'))\n"
        "print(loaded)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
