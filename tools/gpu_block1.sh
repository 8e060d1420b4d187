#!/usr/bin/env bash
# Evidence block 1 for a session with the lent GPU (issue 6). Run on the device machine as
#   OUT=$OUT bash tools/gpu_block1.sh   (device call with carry: ["carry"], made by tools/fetch_gpu_wheels.sh)
# Test it here first with tiny settings:  TINY=1 OUT=/tmp/out bash tools/gpu_block1.sh
# Writes under $OUT: bench.json, bench.txt, runs/table1/<run_id>/log.jsonl (+ nvidia-smi.txt).
# Afterwards copy $OUT/runs/table1/*/log.jsonl into reports/runs/table1/ (no checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT}
PY=${PY:-python}
DATA=${DATA:-carry/cifar10_jpeg.npz}
mkdir -p "$OUT"
# the GPU machine has no internet: install what it lacks from carry/wheels (tools/fetch_gpu_wheels.sh)
# (the device image has torch, torchvision, timm, tqdm, pyyaml, matplotlib; not omegaconf)
if ! $PY -c "import omegaconf, tqdm, yaml" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site carry/wheels/omegaconf-*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
if [ -n "${TINY:-}" ]; then
  BENCH="--steps 3 --warmup 1 --n 512 --batch 64 --workers 0 --model small_cnn"
  RUN="epochs=2 data.train_subset=512 data.test_subset=256 model=small_cnn optim.milestones=[1] amp=none device=cpu"
  SEEDS="0"
else
  BENCH="--steps 100 --warmup 20"
  RUN=""
  SEEDS=${SEEDS:-0 1 2}
fi
# Device time: ~1 min per 30-epoch run on an H100 (estimate, to be measured): split the block over
# two calls if needed, e.g. SEEDS=0 first, then SKIP_BENCH=1 SEEDS="1 2".
# 1. throughput: official-style loop vs fast path, Self-KD overhead (~1 min)
if [ -z "${SKIP_BENCH:-}" ]; then
  $PY -m classification.bench --data "$DATA" $BENCH --json "$OUT/bench.json" | tee "$OUT/bench.txt"
fi
# 2. Table 1 at reduced scale: baseline / LS / Self-KD x seeds, through the training entry point
for seed in $SEEDS; do
  for method in baseline ls selfkd; do
    $PY -m classification.train --config classification/configs/reduced/cifar10jpeg_preact18.yaml \
      data.root="$DATA" method.name=$method seed=$seed out_dir="$OUT/runs" resume=true $RUN
  done
done
find "$OUT/runs" -name checkpoint.pt -delete   # logs only come back
