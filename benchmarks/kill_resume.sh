#!/usr/bin/env bash
# SIGKILL in the middle of training, then the same command again: it resumes from the
# last checkpoint and finishes. Writes the combined log to benchmarks/results/kill_resume.log.
#   bash benchmarks/kill_resume.sh [config] [seconds-after-first-checkpoint]
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/default.py}
AFTER=${2:-10}
WORKDIR=$(mktemp -d /tmp/kill_resume.XXXX)
LOG=benchmarks/results/kill_resume.log
PY=${PYTHON:-.venv/bin/python}
CMD=("$PY" -m seqrec_jax.train "--config=$CONFIG" "--workdir=$WORKDIR")
{
  echo "# $(date -u +%FT%TZ) on $(nproc) CPU cores: ${CMD[*]}"
  echo "# --- first run, killed with SIGKILL ${AFTER}s after its first checkpoint ---"
} > "$LOG"
"${CMD[@]}" >> "$LOG" 2>&1 &
PID=$!
until ls "$WORKDIR/checkpoints" 2>/dev/null | grep -q '^[0-9]*$'; do sleep 1; done
sleep "$AFTER"
kill -9 "$PID" || true
wait "$PID" 2>/dev/null || true
echo "# --- killed; checkpoints on disk: $(ls "$WORKDIR/checkpoints" | tr '\n' ' ') ---" >> "$LOG"
echo "# --- second run: the same command ---" >> "$LOG"
"${CMD[@]}" >> "$LOG" 2>&1
echo "# --- finished: $(cat "$WORKDIR/final.json" | tr -d '\n' | cut -c1-200) ..." >> "$LOG"
cat "$LOG"
