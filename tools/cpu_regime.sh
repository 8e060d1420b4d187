#!/usr/bin/env bash
# The pre-registered Table 1 block in the paper's regime on a 2-core CPU, two runs at a
# time (one thread each), every run resumable: rerunning the same command continues or skips.
#
#   PHASE=baseline  the baseline, seed 0 (committed with the config before any Self-KD run)
#   PHASE=select    alpha_T on a 10% holdout of the training set, {0.1, 0.3, 0.5, 0.7, 0.9}, seed 0
#                   (classification.select_alpha; the candidates run in parallel, then it decides)
#   PHASE=test      baseline / LS / Self-KD x SEEDS with the selected alpha_T
#   PHASE=selfkd    Self-KD only x SEEDS (a regime-map cell whose baseline is done), ALPHA required
#   PHASE=probe     the regime map's small_cnn probe cell (2k un-augmented images, 40 epochs,
#                   alpha_T 0.8 as its seed 0 in reports/runs/probe): baseline and Self-KD x SEEDS
#                   (set SEEDS="1 2" for the seeds its seed 0 lacks); logs in $OUT/probe/
#
# Logs go to $OUT/{regime,alpha_select}/; copy the log.jsonl files (not the checkpoints) and the
# .selection.json to reports/runs/ to commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/regime}
PY=${PY:-.venv/bin/python}
CFG=${CFG:-classification/configs/reduced/regime_resnet20_cpu.yaml}
SEEDS=${SEEDS:-0 1 2}
ALPHAS=${ALPHAS:-0.1 0.3 0.5 0.7 0.9}
ARGS=${ARGS:-}  # extra overrides for a quick check, e.g. ARGS="epochs=1 data.train_subset=64"
PHASE=${PHASE:?set PHASE=baseline, select, test, selfkd or probe}
run_all() { OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '{} > /dev/null'; }
reads_alpha() {  # whether method $1 reads method.selfkd.alpha_T (the method registry decides, not its name)
  $PY -c "import sys; from core.methods import has_alpha_schedule; sys.exit(0 if has_alpha_schedule('$1') else 1)"; }
row=$($PY -c "from classification.train import TrainConfig; from core.config import load_config; \
c = load_config(TrainConfig, '$CFG'); print(c.row or c.model)")
selection="$OUT/alpha_select/${row}_s0.selection.json"
case $PHASE in
  baseline)
    $PY -m classification.train --config "$CFG" method.name=baseline seed=0 out_dir="$OUT" resume=true $ARGS ;;
  select)
    for a in $ALPHAS; do
      echo "$PY -m classification.select_alpha --config $CFG seed=0 out_dir=$OUT $ARGS --alphas $a"
    done | run_all
    # every candidate is complete now: this only reads their logs and writes the choice
    $PY -m classification.select_alpha --config "$CFG" seed=0 out_dir="$OUT" $ARGS --alphas $ALPHAS ;;
  test|selfkd)
    if [ "$PHASE" = test ]; then
      ALPHA=$($PY -c "import json; print(json.load(open('$selection'))['alpha_T'])")
      methods="baseline ls selfkd"
    else
      ALPHA=${ALPHA:?PHASE=selfkd needs ALPHA}
      methods=selfkd
    fi
    echo "alpha_T = $ALPHA"
    for seed in $SEEDS; do
      for m in $methods; do
        a=""; reads_alpha "$m" && a="method.selfkd.alpha_T=$ALPHA"  # baseline / LS: the config as committed
        echo "$PY -m classification.train --config $CFG method.name=$m $a seed=$seed out_dir=$OUT resume=true $ARGS"
      done
    done | run_all ;;
  probe)  # the seed-0 probe's command line (its meta record), with seed and out_dir
    probe="$PY -m classification.train --config classification/configs/reduced/cifar10jpeg_smallcnn_cpu.yaml \
data.train_subset=2000 data.test_subset=2000 data.augment=false epochs=40 optim.milestones=[20,30] table=probe"
    for seed in $SEEDS; do
      for m in baseline selfkd; do echo "$probe method.name=$m seed=$seed out_dir=$OUT resume=true $ARGS"; done
    done | run_all ;;
  *) echo "error: unknown PHASE=$PHASE (baseline, select, test, selfkd or probe)" >&2; exit 2 ;;
esac
