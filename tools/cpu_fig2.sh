#!/usr/bin/env bash
# Reduced-scale Figure 2 on a 2-core CPU: baseline, fixed alpha 0.1 ... 0.7 and linear alpha_T 0.7,
# one seed, with classification/configs/reduced/fig2_smallcnn_cpu.yaml, two runs at a time (one
# thread each), about 30 minutes (27 measured on 2026-11-26). Logs go to $OUT/fig2/<run_id>/; copy the log.jsonl files (not
# the checkpoints) to reports/runs/fig2/ to commit them. Rerunning resumes / skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/cpu_fig2}
PY=${PY:-.venv/bin/python}
SEED=${SEED:-0}
ARGS=${ARGS:-}  # extra overrides, e.g. a quick check: ARGS="epochs=2 data.train_subset=128 optim.milestones=[1]"
CFG=classification/configs/reduced/fig2_smallcnn_cpu.yaml
jobs=("$PY -m classification.train --config $CFG method.name=baseline run_id=small_cnn_baseline_s$SEED")
for a in 0.1 0.2 0.3 0.4 0.5 0.6 0.7; do
  jobs+=("$PY -m classification.train --config $CFG method.selfkd.alpha_kind=fixed method.selfkd.alpha_T=$a run_id=small_cnn_fixed${a}_s$SEED")
done
jobs+=("$PY -m classification.train --config $CFG method.selfkd.alpha_T=0.7 run_id=small_cnn_linear0.7_s$SEED")
printf '%s\n' "${jobs[@]}" | sed "s|\$| seed=$SEED out_dir=$OUT resume=true $ARGS|" \
  | OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '{} > /dev/null'
ls "$OUT"/fig2
