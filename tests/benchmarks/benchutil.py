"""Helpers of the benchmark tests: a benchmark script run as a subprocess (on one CPU
device, as a user runs it) and its results file."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = "--config=configs/default.py:smoke"


def _env() -> dict:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # the tests' 8 fake devices: not what a benchmark runs on
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONUNBUFFERED"] = "1"
  return env


def run_script(script: str, *args: str, ok: bool = True, timeout: float = 900):
  """`python benchmarks/<script> args...` from the repository root; with `ok`, asserts
  exit status 0 (showing the output's tail otherwise)."""
  cmd = [sys.executable, str(REPO / "benchmarks" / script), *args]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                       env=_env())
  if ok:
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stdout[-3000:]}\n" \
                                f"{out.stderr[-5000:]}"
  return out


def train_run(workdir: Path, *args: str) -> None:
  """A finished smoke training run in `workdir` (`python -m seqrec_jax.train`)."""
  cmd = [sys.executable, "-m", "seqrec_jax.train", SMOKE, f"--workdir={workdir}", *args]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=_env())
  assert out.returncode == 0, out.stderr[-5000:]


def results(path: Path) -> dict:
  """A results JSON; every one records the code revision and the machine."""
  with open(path) as f:
    data = json.load(f)
  assert isinstance(data.get("git"), str) and data["git"], data.get("git")
  assert "machine" in data and "backend" in data["machine"]
  return data
