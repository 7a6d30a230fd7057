"""The scripts in examples/ run as a user would run them (a fresh interpreter)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one CPU device, as on a user's machine (not the tests' 8)
  return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


def test_own_loop_trains_and_improves_ndcg():
  proc = _run("own_loop.py", "--steps=300")
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out
  match = re.search(r"NDCG@10 ([0-9.]+) -> ([0-9.]+): improved", proc.stdout)
  assert match, out
  before, after = map(float, match.groups())
  assert after > before + 0.1, out  # a clear gain, not noise (untrained ~0.05)

