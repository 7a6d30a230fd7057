"""Times the README's default job and logs the result: benchmarks/results/default_job.json.

  python benchmarks/default_job_time.py [--out=benchmarks/results/default_job.json]
                                        [--workdir=DIR] [--keep] [--config.X=V ...]

Runs `python -m seqrec_jax.train --config=configs/default.py --workdir=<fresh tmp dir>`
as a subprocess (a fresh workdir, so nothing is resumed), measures the wall time of the
whole command (start-up, data, compilation, training, evaluation), and writes the wall
time, the test metrics from the workdir's final.json, the git revision, and the machine
(CPU model, core count, load average before/after, Python and JAX versions). Extra
`--config.X=V` arguments are passed to the training command and recorded (use them only
for a quick check, and with another --out; the README figure is the plain command).
Run it on an otherwise idle machine: the load average is recorded so that a busy run can
be recognised. The JSON is written only if the job exits 0 and left final.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "default_job.json"
CONFIG = "configs/default.py"


def git_rev() -> str:
  try:
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=True).stdout.strip()
    return rev + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def versions(python: str) -> dict:
  """jax/jaxlib/flax versions as the training interpreter sees them (after the timed run)."""
  code = ("import json, jax, jaxlib, flax; print(json.dumps({'jax': jax.__version__, "
          "'jaxlib': jaxlib.__version__, 'flax': flax.__version__, "
          "'backend': jax.default_backend(), 'devices': [str(d) for d in jax.devices()]}))")
  try:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "JAX_PLATFORMS":
                                        os.environ.get("JAX_PLATFORMS", "cpu")})
    return json.loads(out.stdout.strip().splitlines()[-1])
  except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
    return {}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default=str(DEFAULT_OUT))
  parser.add_argument("--workdir", default="", help="default: a fresh temporary directory")
  parser.add_argument("--keep", action="store_true", help="keep the workdir")
  parser.add_argument("--python", default=sys.executable)
  args, overrides = parser.parse_known_args()
  bad = [o for o in overrides if not o.startswith("--config.")]
  if bad:
    parser.error(f"unknown arguments {bad} (only --config.X=V overrides are passed on)")

  workdir = args.workdir or tempfile.mkdtemp(prefix="default_job_")
  if os.path.exists(os.path.join(workdir, "final.json")):
    parser.error(f"{workdir} already holds a finished run; give a fresh --workdir")
  cmd = [args.python, "-m", "seqrec_jax.train", f"--config={CONFIG}", f"--workdir={workdir}",
         *overrides]
  print("running:", " ".join(cmd), flush=True)
  load_before = load_average()
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, cwd=REPO)
  wall = time.perf_counter() - t0
  load_after = load_average()
  final_path = os.path.join(workdir, "final.json")
  if proc.returncode != 0 or not os.path.exists(final_path):
    print(f"default job failed (exit {proc.returncode}, final.json "
          f"{'present' if os.path.exists(final_path) else 'missing'}); workdir {workdir}; "
          "nothing written", file=sys.stderr)
    return 1
  with open(final_path) as f:
    final = json.load(f)
  test = final.get("test", {})
  record = {
      "command": "python -m seqrec_jax.train --config=configs/default.py --workdir=<tmp>"
                 + "".join(" " + o for o in overrides),
      "overrides": overrides,
      "wall_seconds": round(wall, 2),
      "train_seconds": final.get("train_seconds"),
      "test": {k: test[k] for k in ("hr@10", "ndcg@10", "users") if k in test},
      "test_all": test,
      "best_step": final.get("best_step"),
      "num_items": final.get("num_items"),
      "git": git_rev(),
      "machine": {"host": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
                  "load_average_before": load_before, "load_average_after": load_after,
                  "python": platform.python_version(), **versions(args.python)},
      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  print(f"wall {wall:.1f} s, test HR@10 {test.get('hr@10')}, NDCG@10 {test.get('ndcg@10')}; "
        f"wrote {args.out}")
  if not args.keep and not args.workdir:
    shutil.rmtree(workdir, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
