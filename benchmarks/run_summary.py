"""Saves a training run's outcome as a results file: command, code revision, machine,
the validation curve (EMA and raw-parameter NDCG@10, exclude_seen), the final report
(best step, validation and the one test evaluation) and the config.

  python benchmarks/run_summary.py RUN_DIR OUT.json --command="COMMAND" [--stopped=WHY]

"git" is the revision the run was made with: its final.json's own "git", else --git
(for runs made before the engine recorded it), else "unknown (...)"; "summary_git" is
this code's. A run without `final.json` (stopped by hand) is saved with `final: null`
and the reason. Run it where the run trained: "machine" is this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)


def summarize(run: str, command: str, git: str = "", stopped: str = "") -> dict:
  keys = ("step", "epoch", "ndcg@10", "hr@10", "excl/ndcg@10", "raw/ndcg@10")
  curve = [{k: r[k] for k in keys if k in r} for r in common.read_metrics(run)
           if r["kind"] == "valid"]
  final = common.read_final(run)
  with open(os.path.join(run, "config.json")) as f:
    config = json.load(f)
  summary = {"command": command,
             "git": (final or {}).get("git") or git or common.UNKNOWN_GIT,
             "summary_git": common.git_revision(), "machine": common.machine(),
             "final": final, "valid_curve": curve, "config": config}
  if final is None:
    summary["stopped"] = stopped or "stopped by hand"
  return summary


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("run", help="the run directory")
  p.add_argument("out", help="the results file to write (.json)")
  p.add_argument("--command", default="", help="the command that trained the run")
  p.add_argument("--git", default="", help="its revision, when its final.json has none")
  p.add_argument("--stopped", default="", help="why a run without final.json stopped")
  args = p.parse_args(argv)
  summary = summarize(args.run, args.command, args.git, args.stopped)
  common.write_results(args.out.removesuffix(".json"), summary)
  test = summary["final"] and summary["final"]["test"]["ndcg@10"]
  print(f"{args.out}: {len(summary['valid_curve'])} validation points, test NDCG@10 {test}")


if __name__ == "__main__":
  main()
