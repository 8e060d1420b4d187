#!/usr/bin/env bash
# The pre-registered "which method" study on a 2-core CPU (docs/evidence/study_preregistration.md):
# ResNet-20 with the paper's crop + flip on a CIFAR-10 subset where the baseline fits and is
# over-confident. One thread per run; every run resumable: rerunning the same command continues
# or skips.
#
#   PHASE=pilots  baseline-only pilots, seed 0, ONE at a time (the other core is another job's):
#                 A (4,500 images, 130 epochs), then B (9,000, 65) if A fits, else C (2,250, 260);
#                 each one's log.jsonl, CPU time and command are copied to $REPORTS/study_pilots/
#                 and tools/study_pilots.py prints the pre-registered rule's choice and writes
#                 $CFG, the study config, from it (commit both with the dated note)
#   PHASE=select  alpha_T on the study config's 10% holdout, {0.1, 0.3, 0.5, 0.7, 0.9}, seed 0, two
#                 at a time (classification.select_alpha: lowest holdout top-1, ties to the smaller)
#   PHASE=select-baseline
#                 the same five candidates and the baseline's five seeds (0-4) in one queue of two
#                 (the baseline does not depend on alpha_T), then the selection; a later PHASE=run
#                 finds the baseline runs done and skips them
#   PHASE=run     METHODS x seeds with the selected alpha_T, two at a time: 5 seeds (0-4) for
#                 baseline, ls and selfkd, 3 (0-2) for every other method (default METHODS:
#                 baseline ls selfkd cskd tfkd lwr dlb zipf; METHODS="..." for a subset); the
#                 baseline first, then ls and selfkd seed by seed, then the peers seed by seed
#   PHASE=fitting the regime block's fitting cell ($FIT_CFG: 5,000 un-augmented images, no holdout)
#                 at 5 seeds of baseline, ls and selfkd (its committed alpha_T selection), seed by
#                 seed, in table study, test and fit passes every 5th epoch (eval_every: logging
#                 only; training and final metrics unchanged); each scored on test with the
#                 temperature fitted on 500 training images outside its 5,000 (evaluate
#                 --calibration-images 500). The committed reports/runs/regime/ logs of seeds 0-2
#                 came from another machine: these runs are new draws of the same recipe
#
# Every run of PHASE=run trains evaluating its holdout, then `classification.evaluate --split test
# --record` scores the 10,000 test images raw and after temperature scaling fitted on the run's own
# holdout, appended to its log as an "eval" record (done once: a rerun finds the record).
# Logs go to $OUT/<table>/<run_id>/; copy the log.jsonl files (not the checkpoints) to
# reports/runs/ to commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs}
PY=${PY:-.venv/bin/python}
CFG=${CFG:-classification/configs/reduced/study_cpu.yaml}
FIT_CFG=${FIT_CFG:-classification/configs/reduced/regime_resnet20_cpu.yaml}
ALPHAS=${ALPHAS:-0.1 0.3 0.5 0.7 0.9}
METHODS=${METHODS:-baseline ls selfkd cskd tfkd lwr dlb zipf}
REPORTS=${REPORTS:-reports/runs}  # where the pilots' logs are copied to be committed
ARGS=${ARGS:-}  # extra overrides for a quick check, e.g. ARGS="epochs=1 data.train_subset=64"
PHASE=${PHASE:?set PHASE=pilots, select, select-baseline, run or fitting}
PILOTS=classification/configs/reduced
run_all() { OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '({}) > /dev/null'; }
reads_alpha() {  # whether method $1 reads method.selfkd.alpha_T (the method registry decides, not its name)
  $PY -c "import sys; from core.methods import has_alpha_schedule; sys.exit(0 if has_alpha_schedule('$1') else 1)"; }
run_id_of() { $PY -c "from classification.train import TrainConfig, run_dir_of; from core.config import load_config; \
print(run_dir_of(load_config(TrainConfig, '$1', '$2'.split())).name)"; }

pilot() {  # one pilot, timed (a resumed run appends a line: study_pilots.py sums them), then copied
  local cfg=$PILOTS/$1 id dir dest
  id=$(run_id_of "$cfg" "seed=0 $ARGS")
  dir=$OUT/study_pilots/$id
  dest=$REPORTS/study_pilots/$id
  if ! $PY -c "import sys; from core.runlog import read_run_log; sys.exit(0 if read_run_log('$dir/log.jsonl').complete else 1)" 2>/dev/null; then
    mkdir -p "$OUT/study_pilots"  # (the time file sits beside the run folder: a fresh run moves a folder's contents aside)
    OMP_NUM_THREADS=1 /usr/bin/time -f "%U %S %e" -a -o "$dir.cpu_time.txt" \
      $PY -m classification.train --config "$cfg" seed=0 threads=1 out_dir="$OUT" resume=true $ARGS > "$dir.out"
  fi
  mkdir -p "$dest"
  cp "$dir/log.jsonl" "$dest/"
  cp "$dir.cpu_time.txt" "$dest/cpu_time.txt"
  echo "OMP_NUM_THREADS=1 python -m classification.train --config $cfg seed=0 threads=1 out_dir=$OUT resume=true $ARGS" \
    > "$dest/command.txt"
  echo "$dest"
}

select_lines() {
  for a in $ALPHAS; do
    echo "$PY -m classification.select_alpha --config $CFG seed=0 threads=1 out_dir=$OUT $ARGS --alphas $a"
  done
}
queue_of() {  # methods ("" = the row's plan), baseline first (True/False): "method seed" lines
  $PY -c "from reports.study import queue; \
print('\n'.join(f'{m} {s}' for m, s in queue('$(row_of)', '$1'.split() or None, $2)))"; }
row_of() { $PY -c "from classification.train import TrainConfig; from core.config import load_config; \
c = load_config(TrainConfig, '$CFG'); print(c.row or c.model)"; }
run_line() {  # method, seed, extra overrides, extra evaluate options: train (resumable), then score the test set once
  echo "$PY -m classification.train --config $CFG method.name=$1 ${3:-} seed=$2 threads=1 out_dir=$OUT resume=true $ARGS \
&& $PY -m classification.evaluate $OUT/study/$(row_of)_$1_s$2 --split test --record ${4:-}"
}
choose() {  # every candidate is complete now: this only reads their logs and writes the choice
  $PY -m classification.select_alpha --config "$CFG" seed=0 threads=1 out_dir="$OUT" $ARGS --alphas $ALPHAS
}

case $PHASE in
  pilots)
    a=$(pilot study_resnet20_4k5_aug_e130_cpu.yaml)
    # the pre-registered order: more data if A fits, fewer images if it does not
    if $PY -c "import sys; from core.runlog import read_run_log; \
sys.exit(0 if read_run_log('$a/log.jsonl').epochs[-1]['train_top1_err'] <= 5.0 else 1)"; then
      pilot study_resnet20_9k_aug_e65_cpu.yaml
    else
      pilot study_resnet20_2k25_aug_e260_cpu.yaml
    fi
    # the rule's choice, and the study config from it ($CFG; an existing one is kept)
    $PY tools/study_pilots.py "$REPORTS/study_pilots" --json "$REPORTS/study_pilots/choice.json" --write-config "$CFG" ;;
  select)
    select_lines | run_all
    choose ;;
  select-baseline)
    { select_lines; for seed in 0 1 2 3 4; do run_line baseline $seed; done; } | run_all
    choose ;;
  run)
    ALPHA=$($PY -c "import json; print(json.load(open('$OUT/alpha_select/$(row_of)_s0.selection.json'))['alpha_T'])")
    echo "alpha_T = $ALPHA"
    # reports.study.queue: the plan's seeds per method and their order (the baseline first, then
    # label smoothing and Self-KD seed by seed, then the peers seed by seed)
    queue_of "$METHODS" True | while read -r m seed; do
      a=""; reads_alpha "$m" && a="method.selfkd.alpha_T=$ALPHA"  # every other method: the config as committed
      run_line "$m" "$seed" "$a"
    done | run_all ;;
  fitting)
    CFG=$FIT_CFG
    ALPHA=$($PY -c "import json; print(json.load(open('$REPORTS/alpha_select/$(row_of)_s0.selection.json'))['alpha_T'])")
    echo "alpha_T = $ALPHA"
    queue_of "" False | while read -r m seed; do  # its plan (reports.study), seed by seed
      a="table=study eval_every=5"; reads_alpha "$m" && a="$a method.selfkd.alpha_T=$ALPHA"
      run_line "$m" "$seed" "$a" "--calibration-images 500"
    done | run_all ;;
  *) echo "error: unknown PHASE=$PHASE (pilots, select, select-baseline, run or fitting)" >&2; exit 2 ;;
esac
