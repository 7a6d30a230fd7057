#!/usr/bin/env bash
# SIGKILL training at 20+ moments (steps, evaluation, checkpoint writes, the best-model
# save, start-up), rerun the same command each time, and check the finished run equals an
# uninterrupted one. See benchmarks/kill_resume.py; summary in benchmarks/results/.
#   bash benchmarks/kill_resume.sh [kills]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" benchmarks/kill_resume.py --kills "${1:-20}" --out benchmarks/results/kill_resume.json
