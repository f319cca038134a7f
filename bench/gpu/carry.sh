# Shared by the GPU scripts (sourced, from the repo root): what a carried folder for the device
# machine holds besides its payload, and how the device side uses it.

# carry_wheels DIR: the wheels the device image lacks, for its Python 3.12.
carry_wheels() {
  .venv/bin/pip download -q --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 -d "$1/wheels" pydantic-settings platformdirs
  # ffmpeg-python imports past.builtins (the `future` package) at import time, on Python 3 too.
  .venv/bin/pip download -q --no-deps -d "$1/wheels" ffmpeg-python future
}

# check_carry DIR: what travels (the tracked tree and DIR) must stay under the device tool's
# 64 MiB (8 frames in .gpu once made it 66.4 MiB, which the tool would have refused).
check_carry() {
  local tree carry total
  tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  carry=$(du -sb "$1" | cut -f1)
  total=$((tree + carry))
  awk -v d="$1" -v c="$carry" -v t="$total" \
    'BEGIN { printf "%s: %.1f MiB; with the tree %.1f MiB of 64\n", d, c / 1048576, t / 1048576 }'
  if [ "$total" -ge $((64 * 1048576)) ]; then echo "too large to travel: carry less" >&2; return 1; fi
}

# use_carry DIR: on the device machine, install DIR's wheels in a folder of their own (not the
# image's environment) and put the packages' source folders on PYTHONPATH (nothing of silkpurse
# is installed there); the models come from DIR.
use_carry() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$1"/wheels/*.whl 2>&1 | tail -2
  local packages=$PWD:$PWD/core:$PWD/cli:$PWD/services/upscaler:$PWD/services/interpolator
  export PYTHONPATH=$packages:$PWD/services/encoder:$PWD/services/extractor:/tmp/site
  export SILKPURSE_MODELS_DIR=$PWD/$1/models
}
