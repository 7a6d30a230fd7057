"""Saves a training run's outcome as a results file: command, commit, machine, the
validation curve (EMA and raw-parameter NDCG@10, exclude_seen), the final report
(best step, validation and the one test evaluation) and the config.

  python benchmarks/run_summary.py RUN_DIR OUT.json "COMMAND" GIT_COMMIT [WHY_STOPPED]

A run without `final.json` (stopped by hand) is saved with `final: null` and the reason.
"""

from __future__ import annotations

import json
import os
import sys


def machine() -> str:
  """The machine this runs on (run it where the run trained)."""
  import jax  # only here: the rest needs no JAX
  return f"{os.cpu_count()}-core CPU VM, jax {jax.__version__} {jax.default_backend()}"


def summarize(run: str, command: str, git: str, stopped: str = "") -> dict:
  rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
  keys = ("step", "epoch", "ndcg@10", "hr@10", "excl/ndcg@10", "raw/ndcg@10")
  curve = [{k: r[k] for k in keys if k in r} for r in rows if r["kind"] == "valid"]
  try:
    final = json.load(open(f"{run}/final.json"))
  except FileNotFoundError:
    final = None
  summary = {"command": command, "git": git,
             "machine": machine(),
             "final": final, "valid_curve": curve,
             "config": json.load(open(f"{run}/config.json"))}
  if final is None:
    summary["stopped"] = stopped or "stopped by hand"
  return summary


def main(argv: list[str]) -> None:
  if len(argv) not in (5, 6):
    sys.exit(__doc__)
  run, out, command, git = argv[1:5]
  summary = summarize(run, command, git, argv[5] if len(argv) == 6 else "")
  with open(out, "w") as f:
    json.dump(summary, f, indent=1)
  test = summary["final"] and summary["final"]["test"]["ndcg@10"]
  print(f"{out}: {len(summary['valid_curve'])} validation points, test NDCG@10 {test}")


if __name__ == "__main__":
  main(sys.argv)
