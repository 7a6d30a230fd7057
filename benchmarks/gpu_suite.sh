#!/usr/bin/env bash
# The GPU suite: everything a session with a GPU should measure, in one device-tool call
# (<= 8 minutes in all; each step gets a share of a global deadline, most important first):
#   1. the GPU-marked tests (cuDNN vs XLA attention),
#   2. the throughput grid (benchmarks/throughput.py --preset=gpu: up to d=512, 8 blocks,
#      L=512, bf16, catalogues up to 1M items, plus the row of configs/sasrec_ml1m.py),
#   3. the SASRec ML-1M quality run with the real config (configs/sasrec_ml1m.py) on the
#      device-resident path,
#   4. time to validation NDCG@10 >= 0.138 (benchmarks/time_to_quality.py: an engine run,
#      stopped at the target),
#   5. train-step peak memory against catalogue size (benchmarks/memory.py) on the GPU,
#   6. the ML-1M preset vs packing + sampled softmax (benchmarks/fast_training.py, each
#      run under a training budget),
#   7. RecBole 1.2.1 vs ours, training targets/s (only when RecBole's wheels were carried).
# Results: $OUT (the tool brings back at most 8 files): suite.log, the markdown tables,
# the throughput plot, the quality run's final.json and everything in one .tgz.
#
# Prepare, in the repository root on the machine you call the tool from (../shared
# does not travel, so the data and wheels are copied into ignored folders and carried):
#   mkdir -p .whl .gpudata/ml-1m-subset-users1-2999
#   cp ../shared/wheels-gpu/*.whl .whl/                      # grain, ml-collections, ...
#   cp ../shared/data/ml-1m-subset-users1-2999/ratings.dat.gz .gpudata/ml-1m-subset-users1-2999/
#   grep -qx /.gpudata/ .git/info/exclude || echo /.gpudata/ >> .git/info/exclude
#   # optional, for step 5 (pure-Python wheels; torch is already on the GPU machine):
#   python3 -m pip download --no-deps -d .whl recbole==1.2.1 colorlog==4.7.2 texttable==1.7.0
# Then one call of the device tool:
#   run(command="bash benchmarks/gpu_suite.sh .gpudata", carry=[".whl", ".gpudata"], timeout_s=600)
# Knobs (environment): SUITE_SECONDS (default 540), PYTHON (default python3).
#
# Dry run on a CPU box (tiny settings, no GPU needed): SUITE_DRY_RUN=1 bash benchmarks/gpu_suite.sh
#
# Exit status: 0 only if every step ran and succeeded. A step that exits non-zero (or is
# killed by its time cap), a step skipped for the suite deadline, a failed wheel install or
# JAX import, and a quality run that leaves no final.json all count as failures; every step
# still runs (one failure does not hide the others' measurements), and at the end the
# suite lists each failure and exits 1. The RecBole step being skipped because RecBole is
# not importable (its wheels were not carried) is optional and not a failure.
set -uo pipefail  # not -e: a failed step is recorded (fail below) and the next one runs
cd "$(dirname "$0")/.." || exit 1

DATA_DIR=$(realpath "${1:-.gpudata}")
OUT_DIR=${OUT:-/tmp/gpu_suite_out}
WORK=$(mktemp -d /tmp/gpu_suite.XXXX)
RES="$WORK/results"
PY=${PYTHON:-python3}
DRY=${SUITE_DRY_RUN:-0}
BUDGET=${SUITE_SECONDS:-540}
DEADLINE=$(( $(date +%s) + BUDGET ))
LOG="$OUT_DIR/suite.log"
mkdir -p "$OUT_DIR" "$RES"
exec > >(tee -a "$LOG") 2>&1

finish() {
  echo "# $(date -u +%FT%TZ) suite finished; results in $RES"
  tar czf "$OUT_DIR/gpu_suite_results.tgz" -C "$WORK" results 2>/dev/null
  for f in throughput_gpu.md throughput_gpu.png time_to_quality_gpu.md compare_recbole_gpu.md \
           memory_gpu.md fast_training_gpu.md quality_final.json; do
    [ -f "$RES/$f" ] && cp "$RES/$f" "$OUT_DIR/"
  done
  sleep 1  # let tee flush suite.log
}
trap finish EXIT

FAILED=()
fail() {  # record a failure; reported, and the exit status set, at the end
  FAILED+=("$*")
  echo "## FAILED: $*"
}

# Runs "$@" under `timeout`, for at most CAP seconds and never past the deadline.
step() {
  local name=$1 cap=$2 left
  shift 2
  left=$(( DEADLINE - $(date +%s) - 10 ))
  if (( left < 20 )); then
    echo "## $name: skipped (suite deadline)"
    fail "$name: skipped (suite deadline)"
    return 1
  fi
  (( cap > left )) && cap=$left
  echo "## $(date -u +%T) $name (<= ${cap}s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout "$cap" "$@"
  rc=$?
  echo "## $name: exit $rc after $(( $(date +%s) - t0 ))s"
  if (( rc == 124 || rc == 137 )); then
    fail "$name: killed by its ${cap}s cap (exit $rc)"
  elif (( rc != 0 )); then
    fail "$name: exit $rc"
  fi
  return "$rc"
}

echo "# $(date -u +%FT%TZ) gpu_suite on $(hostname), budget ${BUDGET}s, data $DATA_DIR, dry=$DRY"
if [ "$DRY" != 1 ]; then
  nvidia-smi -L || true
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || fail "wheel install failed"
  else
    echo "no .whl/ folder: grain and ml-collections must already be importable"
  fi
  export PYTHONPATH="/tmp/site:$PWD"
  export RECBOLE_PYTHONPATH=/tmp/site
else
  export PYTHONPATH="$PWD"
fi
export SEQREC_DATA="$DATA_DIR" PYTHONUNBUFFERED=1
"$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())" \
  || fail "jax/flax import"

if [ "$DRY" = 1 ]; then  # tiny settings: checks that every step runs, on CPU
  export JAX_PLATFORMS=cpu
  TESTS=(tests/models/test_attention_impl.py)
  GRID=(--preset=cpu --dims=16 --blocks=1 --lengths=16 --batches=8 --items=100
        --steps_per_dispatch=2 --dispatches=1 --config_row=off)
  QUALITY=(--config.model.max_len=20 --config.model.embed_dim=16 --config.model.mlp_dim=32
           --config.train.batch_size=512 --config.train.num_epochs=2 --config.train.eval_every_epochs=1)
  TTQ=(--config.train.num_epochs=1 --config.model.max_len=20 --config.model.embed_dim=16
       --config.model.mlp_dim=32 --config.train.batch_size=512)
  RECBOLE=(--batches=2 --warmup=1 --steps_per_dispatch=2 --dispatches=1 --config.model.max_len=20)
  MEMORY=(--items=1e3,1e4 --batch=8 --max_len=16 --dim=16)
  FAST=(--preset=default --variant=smoke --fast.loss.num_negatives=16)
else
  export JAX_PLATFORMS=cuda  # tests/conftest.py would otherwise pick the CPU
  TESTS=(-m gpu tests)
  GRID=(--preset=gpu --max_seconds=150)
  QUALITY=(--config.train.checkpoint_every_epochs=25)
  TTQ=(--max_seconds=80)
  RECBOLE=(--batches=200 --warmup=20 --steps_per_dispatch=23 --dispatches=20 --repeat_ours=off)
  MEMORY=()
  FAST=(--preset=sasrec_ml1m --config.train.max_train_secs=40 --fast.train.input=device)
fi

step tests 90 "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
step throughput 200 "$PY" benchmarks/throughput.py "${GRID[@]}" --out="$RES" --tag=gpu
step quality 130 "$PY" -m seqrec_jax.train --config=configs/sasrec_ml1m.py \
  --workdir="$WORK/quality" --config.train.input=device --config.train.length_grouping=0 \
  "${QUALITY[@]}"
quality_rc=$?
if [ -f "$WORK/quality/final.json" ]; then
  cp "$WORK/quality/final.json" "$RES/quality_final.json"
elif (( quality_rc == 0 )); then  # (a non-zero exit is already recorded by step)
  fail "quality: exit 0 but no $WORK/quality/final.json (the training run did not finish)"
fi
[ -f "$WORK/quality/metrics.jsonl" ] && cp "$WORK/quality/metrics.jsonl" "$RES/quality_metrics.jsonl"
step time_to_quality 110 "$PY" benchmarks/time_to_quality.py "${TTQ[@]}" --out="$RES" --tag=gpu \
  --workdir_root="$WORK"
step memory 60 "$PY" benchmarks/memory.py "${MEMORY[@]}" --out="$RES/memory_gpu"
step fast_training 150 "$PY" benchmarks/fast_training.py "${FAST[@]}" --out="$RES" --tag=gpu \
  --workdir_root="$WORK/fast"
[ -f "$RES/fast_training_gpu.json" ] || fail "fast_training: no fast_training_gpu.json"

RB_PY="$PY"
[ "$DRY" = 1 ] && RB_PY=${RECBOLE_PYTHON:-/tmp/recbole-venv/bin/python}
if PYTHONPATH="${RECBOLE_PYTHONPATH:-}" "$RB_PY" -c "import recbole" 2> /dev/null; then
  step recbole 150 "$PY" benchmarks/compare_recbole.py --recbole_python="$RB_PY" \
    "${RECBOLE[@]}" --out="$RES" --tag=gpu
else
  echo "## recbole: skipped (not importable by $RB_PY; carry its wheels in .whl/ to run it)"
fi
for f in "$RES"/*.md; do
  [ -f "$f" ] && { echo "### $(basename "$f")"; cat "$f"; }
done

if (( ${#FAILED[@]} )); then
  echo "# ${#FAILED[@]} failure(s):"
  printf '#   %s\n' "${FAILED[@]}"
  exit 1
fi
echo "# all steps succeeded"
exit 0
