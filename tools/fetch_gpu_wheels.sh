#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (it runs Python 3.12, has torch/torchvision/timm/matplotlib and
# no internet): put them in carry/wheels (git-ignored) and name "carry" in the device call's carry.
# Also copies the shared CIFAR-10 JPEG file next to them (56 MB of the 64 MiB carry budget).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p carry/wheels
PIP=${PIP:-.venv/bin/pip}
$PIP download -q -d carry/wheels --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 omegaconf tqdm pyyaml
cp -n ../shared/data/cifar10-jpeg/cifar10_jpeg.npz carry/ 2>/dev/null || true
du -sh carry
