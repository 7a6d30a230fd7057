#!/usr/bin/env bash
# The recommend CLI on a finished ML-1M run (users 1-2999 of ../shared/data), with movie
# titles, without and with --explain, written to benchmarks/results/recommend_ml1m.txt.
#
#   bash benchmarks/recommend_demo.sh WORKDIR [USERS]     (USERS default: 1,42,2999)
#
# Also shows an ad-hoc history of original movie ids and an allow/deny list request, and
# the same user through an export (infer/export.py), so the figures can be compared.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:?usage: recommend_demo.sh ML1M_WORKDIR [USERS]}
USERS=${2:-1,42,2999}
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/results/recommend_ml1m.txt}
EXPORT=$(mktemp -d)/export
trap 'rm -rf "$(dirname "$EXPORT")"' EXIT
FIRST=${USERS%%,*}
{
  echo "# python -m seqrec_jax.recommend on $WORKDIR (git $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "\$ python -m seqrec_jax.recommend --workdir=$WORKDIR --user=$USERS --k=10"
  "$PY" -m seqrec_jax.recommend --workdir="$WORKDIR" --user="$USERS" --k=10
  echo
  echo "\$ python -m seqrec_jax.recommend --workdir=$WORKDIR --user=$FIRST --k=5 --explain"
  "$PY" -m seqrec_jax.recommend --workdir="$WORKDIR" --user="$FIRST" --k=5 --explain
  echo
  # Star Wars IV, V, VI (260, 1196, 1210), then The Matrix (2571): an ad-hoc history.
  echo "\$ python -m seqrec_jax.recommend --workdir=$WORKDIR --history=260,1196,1210,2571 --k=5 --explain"
  "$PY" -m seqrec_jax.recommend --workdir="$WORKDIR" --history=260,1196,1210,2571 --k=5 --explain
  echo
  echo "\$ python -m seqrec_jax.recommend --workdir=$WORKDIR --history=260,1196,1210 --k=5 --allow=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20 --exclude=1,2"
  "$PY" -m seqrec_jax.recommend --workdir="$WORKDIR" --history=260,1196,1210 --k=5 \
    --allow=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20 --exclude=1,2
  echo
  echo "\$ python -m seqrec_jax.recommend --workdir=$WORKDIR --export_to=EXPORT  (then --export=EXPORT --user=$FIRST)"
  "$PY" -m seqrec_jax.recommend --workdir="$WORKDIR" --export_to="$EXPORT" > /dev/null
  "$PY" -m seqrec_jax.recommend --export="$EXPORT" --user="$FIRST" --k=10
} 2>&1 | tee "$OUT"
echo "wrote $OUT"
