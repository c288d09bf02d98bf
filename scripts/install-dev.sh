#!/usr/bin/env bash
# Everything a fresh Debian machine needs to develop and test segserve: Chromium and Node for the
# browser and RLE tests, then the package with its dev extras. torch/torchvision are pinned to the
# builds this project is tested with (pip finds them on the dev machines' local index).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v hadolint >/dev/null || true
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 -e ".[dev]"
