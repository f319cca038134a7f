#!/usr/bin/env bash
# End to end on a GPU machine (run from the repo root with .gpu-e2e/ carried; see prepare-e2e.sh):
# `enhance --scale 2 --interpolate 2` on a real 720p clip, both stage orders, with the models'
# own time inside each run, GPU utilisation and peak memory (bench_speed.py), then the same with
# one encoder instead of the default one per 4 cores. Results in $OUT/e2e.txt, written as it
# goes; the steps' caps add up to 560 s, inside the device tool's 600 s per command.
# DEVICE=cpu FRAMES=6 rehearses the script on a machine without a GPU.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-200}
mkdir -p "$OUT" /tmp/ff
RESULTS="$OUT/e2e.txt"
: >"$RESULTS"
step() { echo; echo "== $1"; } >>"$RESULTS"
tar -C /tmp/ff -xJf .gpu-e2e/ffmpeg.tar.xz
export PATH=/tmp/ff:$PATH
. bench/gpu/carry.sh
use_carry .gpu-e2e
export SILKPURSE_WORK_DIR=/tmp/silkpurse-work
mkdir -p "$SILKPURSE_WORK_DIR"
step "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  echo "cores: $(nproc)"; ffmpeg -hide_banner -version | head -1
  python3 -c "import torch; print('torch', torch.__version__)"; } >>"$RESULTS" 2>&1
step "bench_speed.py: engines alone, then enhance (both orders) on $FRAMES frames of real 720p footage"
timeout 380 python3 bench/bench_speed.py --device "$DEVICE" --source .gpu-e2e/clip720.mp4 --width 1280 \
  --frames "$FRAMES" --no-fp32 --no-png --order both --json "$OUT/e2e.json" >>"$RESULTS" 2>&1
step "enhance --encoders 1 (the default above: one encoder per 4 cores)"
if timeout 180 python3 -m silkpurse_cli enhance .gpu-e2e/clip720.mp4 -o /tmp/e2e-one-encoder.mp4 \
    --device "$DEVICE" --encoders 1 --json --quiet >"$OUT/one-encoder.json" 2>>"$RESULTS"; then
  python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print(r['frames_out'], 'frames out in', \
r['seconds'], 's:', r['output_fps'], 'frames/s')" "$OUT/one-encoder.json" >>"$RESULTS" 2>&1
fi
cat "$RESULTS"
