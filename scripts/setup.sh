#!/usr/bin/env bash
# Set up facessl in ./.venv on a machine with only Python and pip.
# The CPU build of torch goes in first, so the package's torch range is already met and pip
# does not pull a multi-GB CUDA build; bring your own torch build first for a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# TORCH_SPEC lets a GPU user choose another build (e.g. TORCH_SPEC="torch==2.13.0+cu126").
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
# [scale] adds faiss-cpu, so the tests exercise the faiss path of facessl.space.search too.
.venv/bin/python -m pip install --quiet -e ".[test,scale]"
# The MTCNN face detector's weights ship in the facenet-pytorch wheel, which pins torch<2.3
# and torchvision: its files without its dependencies (facessl reads the weights and never
# imports the package; without it, faces are found by OpenCV's Haar cascade).
.venv/bin/python -m pip install --quiet --no-deps "facenet-pytorch==2.6.0"
# The browser test drives Debian's Chromium (Playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "facessl is installed in .venv (run .venv/bin/facessl --help)"
