#!/usr/bin/env bash
# Table 4 with a converged teacher on a 2-core CPU, pre-registered in
# docs/evidence/table4_converged_preregistration.md. Two runs at a time (one thread each); every
# run is started with resume=true: rerunning the same command continues unfinished runs and skips
# finished ones.
#
#   PHASE=baseline  the baseline, seeds 1 and 2, until valid NLL has not improved for 3 epochs
#   PHASE=select    Self-KD seed 1, alpha_T in {0.1, 0.3, 0.5, 0.7}, T epochs (T = the baseline
#                   seed 1's best epoch), then translation.select_alpha picks alpha_T by the
#                   validation BLEU of each run's best checkpoint (test numbers are not read)
#   PHASE=test      Self-KD seeds 1 and 2 with the chosen alpha_T (T epochs; seed 1 repeats its
#                   selection run under table4, which must reproduce it); LS seeds 1 and 2 (early
#                   stopping as the baseline); then greedy (beam 1) BLEU of every test run,
#                   recorded in its log by translation.evaluate --record
#   PHASE=more      a further seed (SEED=3) of the methods in METHODS (default: baseline selfkd;
#                   METHODS=ls for label smoothing's), as the test phase runs them (same T and
#                   alpha_T, LS with early stopping as the baseline), with their greedy BLEU: the
#                   follow-ups, see the pre-registration's notes
#
# Needs `make install-translation prep-multi30k`. Logs go to $OUT/<table>/<run_id>/ (table4, and
# table4_select for the alpha_T candidates), the choice to $OUT/selection.json; copy the log.jsonl
# files (not the checkpoints) and selection.json to reports/runs/table4_converged/, keeping that
# layout, to commit them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/table4_converged}
PY=${PY:-.venv/bin/python}
CFG=${CFG:-translation/configs/reduced/multi30k_de_en_converged_cpu.yaml}
ALPHAS=${ALPHAS:-0.1 0.3 0.5 0.7}
ARGS=${ARGS:-}  # extra overrides for a quick check
PHASE=${PHASE:?set PHASE=baseline, select, test or more}
train="$PY -m translation.train --config $CFG table=table4 out_dir=$OUT resume=true $ARGS"
run_all() { OMP_NUM_THREADS=1 xargs -P 2 -I{} sh -c '{} > /dev/null 2>&1'; }
T() {  # the baseline seed 1's best epoch (its run must be complete)
  $PY - "$OUT/table4/multi30k_de_en_baseline_s1/log.jsonl" <<'PYEOF'
import sys
from core.runlog import read_run_log
log = read_run_log(sys.argv[1])
if log.final is None:
    sys.exit(f"error: {sys.argv[1]} is not complete: run PHASE=baseline first")
print(log.final["metrics"]["best_epoch"])
PYEOF
}
greedy() {  # greedy (beam 1) BLEU of each run folder given, recorded in its log, two at a time
  for run in "$@"; do
    OMP_NUM_THREADS=1 $PY -m translation.evaluate "$run/checkpoints/checkpoint_best.pt" data/multi30k_de_en \
      -s de -t en --beam 1 --record "$run" > /dev/null 2>&1 &
    [ $(jobs -r | wc -l) -ge 2 ] && wait -n
  done; wait
}
reads_alpha() {  # whether method $1 reads method.selfkd.alpha_T (core.methods' registry)
  $PY -c "import sys; from core.methods import has_alpha_schedule; sys.exit(0 if has_alpha_schedule('$1') else 1)"; }
alpha() { $PY -c "import json; print(json.load(open('$OUT/selection.json'))['alpha_T'])"; }
case $PHASE in
  baseline)
    for seed in 1 2; do echo "$train method.name=baseline seed=$seed"; done | run_all ;;
  select)
    t=$(T); echo "T = $t"
    for a in $ALPHAS; do
      echo "$train method.name=selfkd method.selfkd.alpha_T=$a epochs=$t optim.patience=0 seed=1 table=table4_select run_id=multi30k_de_en_selfkd_a${a}_s1"
    done | run_all
    $PY -m translation.select_alpha --out "$OUT/selection.json" \
      $(for a in $ALPHAS; do echo "$OUT/table4_select/multi30k_de_en_selfkd_a${a}_s1"; done) ;;
  test)
    t=$(T); a=$(alpha)
    echo "T = $t, alpha_T = $a"
    # Self-KD seed 2 first: seed 1 repeats its selection run (a reproducibility check), last
    { echo "$train method.name=selfkd method.selfkd.alpha_T=$a epochs=$t optim.patience=0 seed=2"
      echo "$train method.name=ls seed=1"
      echo "$train method.name=ls seed=2"
      echo "$train method.name=selfkd method.selfkd.alpha_T=$a epochs=$t optim.patience=0 seed=1"; } | run_all
    greedy $(for m in baseline ls selfkd; do for seed in 1 2; do echo "$OUT/table4/multi30k_de_en_${m}_s$seed"; done; done) ;;
  more)
    t=$(T); a=$(alpha)
    seed=${SEED:?PHASE=more needs SEED}
    methods=${METHODS:-baseline selfkd}
    echo "T = $t, alpha_T = $a, seed $seed, methods $methods"
    for m in $methods; do  # the pre-registered block's three methods only
      case " baseline ls selfkd " in *" $m "*) ;; *) echo "error: METHODS may name baseline, ls and selfkd, got $m" >&2; exit 2 ;; esac
    done
    for m in $methods; do
      # a method on an alpha_T schedule trains the fixed T epochs its schedule is laid over (with the
      # chosen alpha_T); the others stop early as the baseline (the method registry decides, not the name)
      if reads_alpha "$m"; then
        echo "$train method.name=$m method.selfkd.alpha_T=$a epochs=$t optim.patience=0 seed=$seed"
      else
        echo "$train method.name=$m seed=$seed"
      fi
    done | run_all
    greedy $(for m in $methods; do echo "$OUT/table4/multi30k_de_en_${m}_s$seed"; done) ;;
  *) echo "error: unknown PHASE=$PHASE (baseline, select, test or more)" >&2; exit 2 ;;
esac
ls "$OUT"/table4
