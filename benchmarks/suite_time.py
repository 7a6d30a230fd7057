"""Wall time of a pytest tier, with its pass/fail counts, code revision and machine.

  python benchmarks/suite_time.py                       # the default tier, -n 2 (README's)
  python benchmarks/suite_time.py --args='-m "reliability and not slow"' --tag=reliability

Runs `python -m pytest -q -p no:cacheprovider <args>` in the repository root and writes
benchmarks/results/suite_time_<tag>.json (the summary line, the slowest 25 tests and the
load average before and after: an idle-machine figure needs an idle machine; and this
machine's float32 matmul rate, measured before the tier, because the same VM kind has
run the same suite twice as fast on one day as on another: a time without it cannot be
compared across sessions).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DEFAULT_ARGS = '-n 2 -m "not slow and not reliability"'
# pytest's last line: "445 passed, 3 skipped in 439.37s (0:07:19)" (with -q, no "=" rule)
_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in ([0-9.]+)s", re.M)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--args", default=DEFAULT_ARGS, help="pytest arguments")
  p.add_argument("--tag", default="default")
  p.add_argument("--out", default=str(common.RESULTS))
  a = p.parse_args(argv)
  cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=25",
         *shlex.split(a.args)]
  meta = common.results_meta()  # the revision the tier runs on (taken before it starts)
  load_before = os.getloadavg()
  matmul_gflops = common.measured_matmul_peak() / 1e9  # machine speed, before the tier
  t0 = time.time()
  proc = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True)
  wall = time.time() - t0
  out = proc.stdout + proc.stderr
  summary = ([None] + list(_SUMMARY.finditer(out)))[-1]
  counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)",
                                             summary.group(1) if summary else "")}
  slowest = re.findall(r"^([0-9.]+)s (call|setup|teardown) +(\S+)", out, re.M)[:25]
  result = {**meta, "pytest_args": a.args, "returncode": proc.returncode,
            "wall_seconds": wall, "pytest_seconds": float(summary.group(2)) if summary else None,
            "summary": summary.group(1) if summary else out[-2000:], "counts": counts,
            "load_before": load_before, "matmul_gflops_before": matmul_gflops, "load_after": os.getloadavg(),
            "slowest": [{"seconds": float(s), "phase": ph, "test": t} for s, ph, t in slowest]}
  stem = os.path.join(a.out, f"suite_time_{a.tag}")
  common.write_results(stem, result)
  print(f"{result['summary']} in {wall:.0f} s (rc {proc.returncode}; machine "
        f"{matmul_gflops:.0f} GFLOP/s f32 matmul); wrote {stem}.json")
  return proc.returncode


if __name__ == "__main__":
  sys.exit(main())
