#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (Python 3.12 with torch 2.11, torchvision, timm, tqdm, pyyaml,
# matplotlib, cython, sacrebleu; no internet, no omegaconf): put them in carry/wheels (git-ignored)
# and name "carry" in the device call's carry. Also copies the shared CIFAR-10 JPEG file next to
# them (56 MB of the 64 MiB carry budget).
#
#   bash tools/fetch_gpu_wheels.sh table4   fills carry_t4/ instead (about 15 MB; carry ["carry_t4"]
#     with BLOCK=table4): fairseq-fixed's sdist (built there: cython and a compiler are present),
#     the dependencies the image lacks (hydra-core, omegaconf, bitarray, sacremoses as cp312 wheels,
#     antlr4's pure-Python sdist) and the binarised Multi30k with its test references
#     (`make prep-multi30k` first). Derived from ../shared/data: git-ignored, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PLATFORMS="--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
if [ "${1:-}" = table4 ]; then
  test -f data/multi30k_de_en/bin/dict.de.txt || { echo "run make prep-multi30k first" >&2; exit 2; }
  rm -rf carry_t4 && mkdir -p carry_t4/wheels carry_t4/sdist carry_t4/multi30k_de_en/raw carry_t4/multi30k_de_en/tok
  $PIP download -q -d carry_t4/wheels --no-deps --only-binary=:all: $PLATFORMS \
    hydra-core==1.3.2 omegaconf==2.3.0 bitarray==3.12.3 sacremoses==0.2.0
  # sdists: pip prepares their metadata, which for fairseq needs torch and cython: the venv's
  $PIP download -q -d carry_t4/sdist --no-deps --no-binary :all: --no-build-isolation \
    antlr4-python3-runtime==4.9.3 fairseq-fixed==0.12.3.1
  cp -r data/multi30k_de_en/bin data/multi30k_de_en/prep.json carry_t4/multi30k_de_en/
  cp data/multi30k_de_en/raw/test.* carry_t4/multi30k_de_en/raw/
  cp data/multi30k_de_en/tok/test.* carry_t4/multi30k_de_en/tok/
  du -sh carry_t4
  exit 0
fi
mkdir -p carry/wheels
# relplot (SmoothECE) and the pure-Python packages it imports that the image lacks
$PIP download -q -d carry/wheels --no-deps --only-binary=:all: $PLATFORMS omegaconf relplot seaborn deprecation
cp -n ../shared/data/cifar10-jpeg/cifar10_jpeg.npz carry/ 2>/dev/null || true
du -sh carry
