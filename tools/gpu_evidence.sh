#!/usr/bin/env bash
# Reduced-scale evidence runs for a session with the lent GPU, one block per device call:
#   BLOCK=table1        bench + baseline / LS / Self-KD x $SEEDS        (~1 min a run on an H100: estimate)
#   BLOCK=fig2          fixed alpha 0.1 ... 0.7 and linear alpha_T 0.7, seed 0 (Fig. 2)
#   BLOCK=regularisers  Cutout, CutMix and each + Self-KD (half-batch rule), seed 0
#   BLOCK=table4        Multi30k de-en, baseline / LS / Self-KD, seed 1, paper-size Transformer,
#                       20 epochs (translation/configs/reduced/multi30k_de_en_gpu.yaml). Carry
#                       ["carry_t4"] instead (tools/fetch_gpu_wheels.sh table4: fairseq's sdist, its
#                       missing dependencies as cp312 wheels, the binarised Multi30k); fairseq is
#                       built there first (a few minutes), so this block needs a session of its own.
# Device call: carry ["carry"] (made by tools/fetch_gpu_wheels.sh: omegaconf wheel + the CIFAR-10 JPEG
# file), command e.g.  BLOCK=table1 SEEDS=0 OUT=$OUT bash tools/gpu_evidence.sh
# Test it here first with tiny settings:
#   TINY=1 BLOCK=table1 OUT=/tmp/out PY=.venv/bin/python DATA=../shared/data/cifar10-jpeg/cifar10_jpeg.npz bash tools/gpu_evidence.sh
# Writes under $OUT: bench.{txt,json} (table1 block), runs/<table>/<run_id>/{config.yaml,log.jsonl},
# nvidia-smi.txt. Then copy the log.jsonl files (never checkpoints) into reports/runs/<table>/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT}
PY=${PY:-python}
DATA=${DATA:-carry/cifar10_jpeg.npz}
BLOCK=${BLOCK:-table1}
CONFIG=classification/configs/reduced/cifar10jpeg_preact18.yaml
mkdir -p "$OUT"
(nvidia-smi || true) > "$OUT/nvidia-smi.txt" 2>&1
# the device image has torch, torchvision, timm, tqdm, pyyaml, matplotlib; not omegaconf
if [ "$BLOCK" = table4 ] && ! $PY -c "import fairseq" 2>/dev/null; then
  # fairseq's missing dependencies from wheels, then fairseq itself built from its sdist against
  # the image's torch/numpy/cython; CUDA_HOME unset so setup.py skips its optional CUDA kernels.
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    carry_t4/wheels/*.whl
  $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site \
    carry_t4/sdist/antlr4-python3-runtime-*.tar.gz
  (unset CUDA_HOME; MAX_JOBS=16 $PY -m pip install -q --no-index --no-deps --no-build-isolation \
    --no-cache-dir --target /tmp/site carry_t4/sdist/fairseq_fixed-*.tar.gz)
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  $PY -c "import fairseq; print('fairseq', fairseq.__version__)"
elif ! $PY -c "import omegaconf, tqdm, yaml" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site carry/wheels/omegaconf-*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
T4DATA=${T4DATA:-carry_t4/multi30k_de_en}
if [ -n "${TINY:-}" ]; then
  T4RUN="epochs=2 model.layers=1 model.embed_dim=32 model.ffn_dim=64 optim.precision=fp32 device=cpu data.num_workers=0 eval.beam=1"
  BENCH="--steps 3 --warmup 1 --n 512 --batch 64 --workers 0 --model small_cnn"
  RUN="epochs=2 data.train_subset=512 data.test_subset=256 model=small_cnn optim.milestones=[1] amp=none device=cpu"
else
  BENCH="--steps 100 --warmup 20"
  RUN=""
  T4RUN=""
fi
SEEDS=${SEEDS:-0 1 2}
train() { $PY -m classification.train --config $CONFIG table=table1 data.root="$DATA" out_dir="$OUT/runs" resume=true "$@" $RUN; }
case "$BLOCK" in
  table1)
    [ -n "${SKIP_BENCH:-}" ] || $PY -m classification.bench --data "$DATA" $BENCH --json "$OUT/bench.json" | tee "$OUT/bench.txt"
    for seed in $SEEDS; do for m in baseline ls selfkd; do train method.name=$m seed=$seed; done; done ;;
  fig2)
    for a in 0.1 0.2 0.3 0.4 0.5 0.6 0.7; do
      train table=fig2 method.name=selfkd method.selfkd.alpha_kind=fixed method.selfkd.alpha_T=$a run_id=preact_resnet18_fixed${a}_s0
    done
    train table=fig2 method.name=selfkd method.selfkd.alpha_T=0.7 run_id=preact_resnet18_linear0.7_s0 ;;
  regularisers)
    for m in cutout cutout_selfkd cutmix cutmix_selfkd; do train method.name=$m seed=0; done ;;
  table4)
    for m in selfkd baseline ls; do
      $PY -m translation.train --config translation/configs/reduced/multi30k_de_en_gpu.yaml \
        table=table4 method.name=$m data.prep_dir="$T4DATA" out_dir="$OUT/runs" resume=true $T4RUN
    done ;;
  *) echo "unknown BLOCK=$BLOCK (table1 | fig2 | regularisers | table4)" >&2; exit 2 ;;
esac
find "$OUT/runs" -name "checkpoint*.pt" -delete   # logs only come back
