#!/usr/bin/env bash
# Reduced-scale Table 4 on a 2-core CPU: Multi30k de-en, baseline / LS / Self-KD, one seed, with
# translation/configs/reduced/multi30k_de_en_cpu.yaml (tiny Transformer, 10 epochs), two runs at
# a time (one thread each), about an hour. Needs `make install-translation prep-multi30k`.
# Logs go to $OUT/table4/<run_id>/; copy the log.jsonl files (not the checkpoints) to
# reports/runs/table4/ to commit them. Every run is started with resume=true, so rerunning the
# script resumes unfinished runs and skips finished ones.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/table4_cpu}
PY=${PY:-.venv/bin/python}
SEED=${SEED:-1}
METHODS=${METHODS:-selfkd baseline ls}  # the slowest first, so the two slots finish together
jobs=()
for method in $METHODS; do
  jobs+=("$PY -m translation.train --config translation/configs/reduced/multi30k_de_en_cpu.yaml table=table4 method.name=$method seed=$SEED out_dir=$OUT resume=true")
done
printf '%s\n' "${jobs[@]}" | OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '{} > /dev/null 2>&1'
ls "$OUT"/table4
