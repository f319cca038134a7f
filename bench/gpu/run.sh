#!/usr/bin/env bash
# Every GPU check in one go, all results in one file, $OUT/results.txt (run on the device machine
# from the repo root with .gpu/ carried; see prepare.sh): installs what .gpu/ carries, then the
# CUDA tests (device-resident transfers and streams, fp16, compile and TensorRT agreement),
# bench_speed.py (per-stage frames/s, GPU utilisation, peak memory, next to fp32 in the same run),
# and both engines' CUDA benchmarks. Each step has its own timeout, 560 s together, inside the
# device tool's 600 s per command; results.txt is written as it goes, so a cut run still reports.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"
step() { echo; echo "== $1"; } >>"$RESULTS"
. bench/gpu/carry.sh
use_carry .gpu
export SILKPURSE_TEST_MODELS_DIR=$SILKPURSE_MODELS_DIR
step "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  python3 -c "import torch_tensorrt; print('torch-tensorrt', torch_tensorrt.__version__)" 2>/dev/null \
    || echo "torch-tensorrt: not installed on this image (the TensorRT tests skip)"
  command -v ffmpeg >/dev/null && echo "ffmpeg: $(command -v ffmpeg)" || echo "ffmpeg: none (enhance runs skipped)"; } >>"$RESULTS" 2>&1
step "CUDA tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -o addopts="" -rs -m gpu tests/upscaler/test_upscaler_cuda.py \
  tests/interpolator/test_interpolator_cuda.py tests/test_resident.py 2>&1 | tail -25 >>"$RESULTS"
step "bench_speed.py: animevideov3 x2 then RIFE HDv3 x2, 1280x720 in, real frames, next to fp32"
timeout 100 python3 bench/bench_speed.py --device cuda --frames-npy .gpu/frames.npy --width 1280 --height 720 \
  --frames 32 --json "$OUT/speed.json" >>"$RESULTS" 2>&1
# Apart, so that a long compile or TensorRT build cannot cost the eager figures above.
step "bench_speed.py --backends: the same in torch.compile and TensorRT forms (build time apart)"
timeout 150 python3 bench/bench_speed.py --device cuda --frames-npy .gpu/frames.npy --width 1280 --height 720 \
  --frames 32 --no-fp32 --backends eager compile tensorrt --json "$OUT/backends.json" >>"$RESULTS" 2>&1
step "bench_interpolate.py: the RIFE 4.6 architecture (random weights) at 1920x1080, 8 pairs a call"
timeout 60 python3 bench/bench_interpolate.py --device cuda --random-weights 4.6 --no-reference \
  --clip .gpu/frames.npy --start 0 --sizes 1920x1080 --pairs-per-call 8 >>"$RESULTS" 2>&1
# Real frames (consecutive frames of OpenCV's vtest.avi, saved by prepare.sh) upscaled to each
# size: fp16-vs-fp32 agreement on random noise would measure nothing.
step "bench_interpolate.py: RIFE HDv3 (real weights), 8 pairs a call"
timeout 50 python3 bench/bench_interpolate.py --device cuda --no-reference --skip-quality --clip .gpu/frames.npy \
  --start 0 --sizes 1280x720 1920x1080 --pairs-per-call 8 >>"$RESULTS" 2>&1
step "bench_upscale.py --device cuda"
timeout 50 python3 bench/bench_upscale.py --device cuda --json "$OUT/upscale.json" >>"$RESULTS" 2>&1
cat "$RESULTS"
