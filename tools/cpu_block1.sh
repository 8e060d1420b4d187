#!/usr/bin/env bash
# Reduced-scale Table 1 on a 2-core CPU: baseline / LS / Self-KD x seeds 0-2 with
# classification/configs/reduced/cifar10jpeg_smallcnn_cpu.yaml, two runs at a time (one thread
# each), about 30 minutes. Logs go to $OUT/table1/<run_id>/; copy the log.jsonl files (not the
# checkpoints) to reports/runs/table1/ to commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/cpu_block1}
PY=${PY:-.venv/bin/python}
jobs=()
for seed in 0 1 2; do
  for method in baseline ls selfkd; do
    jobs+=("$PY -m classification.train --config classification/configs/reduced/cifar10jpeg_smallcnn_cpu.yaml table=table1 method.name=$method seed=$seed out_dir=$OUT resume=true")
  done
done
printf '%s\n' "${jobs[@]}" | OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '{} > /dev/null'
ls "$OUT"/table1
