#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (Python 3.12 with torch 2.11, torchvision, timm, tqdm, pyyaml,
# matplotlib, cython, sacrebleu; no internet, no omegaconf): put them in carry/wheels (git-ignored)
# and name "carry" in the device call's carry. fairseq (translation) is not here yet: its sdist
# builds there (cython and a compiler are present) but needs its own dependencies as wheels.
# Also copies the shared CIFAR-10 JPEG file next to them (56 MB of the 64 MiB carry budget).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p carry/wheels
PIP=${PIP:-.venv/bin/pip}
$PIP download -q -d carry/wheels --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 omegaconf
cp -n ../shared/data/cifar10-jpeg/cifar10_jpeg.npz carry/ 2>/dev/null || true
du -sh carry
