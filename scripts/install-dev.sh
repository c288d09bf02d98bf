#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs to develop and test segserve, what the README's
# install step and CI (.ci/run) run:
#   apt (only the packages missing): chromium and nodejs for the browser and RLE tests, fonts-noto-cjk
#     and fontconfig so overlay PNGs draw Chinese labels as glyphs (segserve.render finds the font).
#     apt needs root: run as root, or as a user with sudo (used when not root).
#   pip (into the current Python): the package, editable, with its dev extras, which include
#     [server] and [cpu] (OpenVINO); torch/torchvision pinned to the builds this project is tested
#     with (pip finds them on the dev machines' local index).
#   a separate venv (.venvs/label-studio) holding Label Studio and its SDK for the annotate tests.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v hadolint >/dev/null || true
command -v fc-list >/dev/null || missing+=(fontconfig)
fc-list ':lang=zh-cn' 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
# ultralytics (dev) pulls in opencv-python, whose cv2 may replace the headless one and needs libGL + glib
ldconfig -p | grep -q 'libGL.so.1 ' || missing+=(libgl1)
ldconfig -p | grep -q 'libgthread-2.0.so.0 ' || missing+=(libglib2.0-0)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 -e ".[dev]"
# Label Studio pins numpy/OpenCV below ours, so it gets its own virtual environment in the checkout
# (git-ignored); tests/annotate/test_labelstudio.py starts its server and uses its SDK from there.
if [ ! -x .venvs/label-studio/bin/label-studio ]; then
  python -m venv .venvs/label-studio
  .venvs/label-studio/bin/python -m pip install --quiet "label-studio>=1.23.2" "label-studio-sdk>=2.1.2"
fi
