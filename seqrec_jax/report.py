"""`python -m seqrec_jax.report --workdir=DIR [--compare=DIR2,DIR3] [--out=DIR/report]`.

Reads each training run's `metrics.jsonl` (and `final.json`, `config.json` where present)
and writes, into `--out` (default `<workdir>/report`):

  loss.png        training loss(es) vs step ("loss", or "d_loss"/"g_loss" of GAN runs)
  valid.png       the validation selection metric (config.eval.select_metric, e.g. ndcg@10)
                  vs step, one panel each for the plain, `excl/` (seen items excluded)
                  and, where logged, `raw/` (non-averaged parameters) figures
  throughput.png  steps_per_s, targets_per_s and step_time_s vs step, where logged
  report.md       one table, a column per run: best step, best validation and test
                  ndcg@10 / hr@10 with and without `excl/`, train_seconds, git revision

Each PNG overlays all the runs (the first is --workdir, then --compare, in order); a
curve family no run logged is left out. A run without `final.json` (still running or
stopped) is summarized from metrics.jsonl and marked so. Plots need matplotlib (the
`plot` extra: `pip install -e '.[plot]'`); nothing here imports JAX.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

METRICS_FILE = "metrics.jsonl"
DEFAULT_METRIC = "ndcg@10"
TABLE_METRICS = ("ndcg@10", "hr@10", "excl/ndcg@10", "excl/hr@10")


# ---- Reading runs ---------------------------------------------------------------------------

def _read_json(path: str) -> Any | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e})") from e


def load_run(workdir: str) -> dict:
  """A run's records and summaries: {"name", "workdir", "records", "final", "config"}.

  `records` are metrics.jsonl's lines in order; `final` and `config` are final.json and
  config.json (None if absent). A last line without its newline (a write in progress)
  is skipped; any other unreadable line is an error naming the file and line.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run's workdir?")
  with open(path) as f:
    text = f.read()
  lines = text.split("\n")[:-1]  # drops "" after the last newline, or a partial line
  records = []
  for i, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{i}: not a JSON record ({e})") from e
    if not isinstance(record, dict):
      raise ValueError(f"{path}:{i}: not a JSON object")
    records.append(record)
  return {"name": os.path.basename(os.path.normpath(workdir)) or workdir,
          "workdir": workdir, "records": records,
          "final": _read_json(os.path.join(workdir, "final.json")),
          "config": _read_json(os.path.join(workdir, "config.json"))}


def _eval_config(run: dict) -> dict:
  return ((run.get("config") or {}).get("eval") or {})


def select_metric(runs: list[dict]) -> str:
  """The validation metric to plot: the first run's config.eval.select_metric."""
  for run in runs:
    metric = _eval_config(run).get("select_metric")
    if metric:
      return metric
  return DEFAULT_METRIC


def series(records: list[dict], kind: str, key: str) -> dict[str, tuple[list, list]]:
  """{phase ("" if none): (steps, values)} of `key` in `kind` records, by step.

  A step logged twice (a resumed run redoes the steps after its last checkpoint) keeps
  the later record.
  """
  by_phase: dict[str, dict[int, float]] = {}
  for r in records:
    if r.get("kind") == kind and key in r and "step" in r and _is_number(r[key]):
      by_phase.setdefault(r.get("phase") or "", {})[int(r["step"])] = float(r[key])
  return {phase: (sorted(points), [points[s] for s in sorted(points)])
          for phase, points in by_phase.items()}


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _labels(runs: list[dict]) -> list[str]:
  """Run names, or their paths where two runs share a name."""
  names = [r["name"] for r in runs]
  return [r["workdir"] if names.count(r["name"]) > 1 else r["name"] for r in runs]


# ---- Plots ----------------------------------------------------------------------------------

def _figure_class():
  try:
    from matplotlib.figure import Figure  # Figure objects render with Agg, no pyplot state
  except ImportError as e:
    raise ImportError("the report's plots need matplotlib, which is in the 'plot' extra: "
                      "pip install -e '.[plot]'") from e
  return Figure


def _plot_family(path: str, title: str, panels: list[tuple[str, str, list[str]]],
                 runs: list[dict], labels: list[str]) -> bool:
  """One PNG: a panel per (kind, y label, keys); every run's series overlaid. False (and
  no file) when no run has any point of any panel."""
  found = [[(label, phase, key, xs, ys)
            for run, label in zip(runs, labels)
            for key in keys
            for phase, (xs, ys) in series(run["records"], kind, key).items()]
           for kind, _, keys in panels]
  kept = [(panel, lines) for panel, lines in zip(panels, found) if lines]
  if not kept:
    return False
  figure = _figure_class()(figsize=(6.0 * len(kept), 4.0), layout="constrained")
  axes = figure.subplots(1, len(kept), squeeze=False)[0]
  for ax, ((kind, ylabel, keys), lines) in zip(axes, kept):
    for label, phase, key, xs, ys in lines:
      name = label + (f" [{phase}]" if phase else "") + (f" {key}" if len(keys) > 1 else "")
      ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{kind}: {ylabel}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  figure.suptitle(title)
  figure.savefig(path, dpi=100, format="png")
  return True


def _loss_keys(runs: list[dict]) -> list[str]:
  keys = {k for run in runs for r in run["records"] if r.get("kind") == "train"
          for k in r if k == "loss" or k.endswith("_loss")}
  return sorted(keys, key=lambda k: (k != "loss", k))


# ---- Summary table ----------------------------------------------------------------------------

def summarize(run: dict) -> dict:
  """The table's figures for one run: from final.json, else from metrics.jsonl."""
  final = run.get("final")
  records = run["records"]
  train_steps = [r["step"] for r in records if r.get("kind") == "train" and "step" in r]
  out = {"last_step": max(train_steps) if train_steps else None}
  if final is not None:
    git = final.get("git")
    if isinstance(git, dict):
      git = " ".join(f"{k}={v}" for k, v in git.items())
    out.update(status="finished", best_step=final.get("best_step"),
               valid=final.get("valid") or {}, test=final.get("test") or {},
               train_seconds=final.get("train_seconds"), git=git)
    return out
  # No final.json: the best validation record by the run's own selection rule.
  cfg = _eval_config(run)
  key = ("excl/" if cfg.get("exclude_seen") else "") + cfg.get("select_metric", DEFAULT_METRIC)
  valid = [r for r in records if r.get("kind") == "valid" and _is_number(r.get(key))]
  best = max(valid, key=lambda r: r[key], default=None)  # first of equals, like the loop
  tests = [r for r in records if r.get("kind") == "test"]
  times = [r["time"] for r in records if r.get("kind") == "train" and _is_number(r.get("time"))]
  out.update(status="no final.json", best_step=best["step"] if best else None,
             valid=best or {}, test=tests[-1] if tests else {},
             train_seconds=times[-1] if times else None, git=None)
  return out


def _fmt(value: Any, digits: int = 4) -> str:
  if value is None:
    return "-"
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"
  return str(value).replace("|", "\\|")


def _table(runs: list[dict], labels: list[str], metric: str) -> list[str]:
  sums = [summarize(r) for r in runs]
  metrics = list(TABLE_METRICS) + [m for m in (metric, "excl/" + metric)
                                   if m not in TABLE_METRICS]
  rows = [("status", [s["status"] for s in sums]),
          ("best step", [_fmt(s["best_step"]) for s in sums]),
          ("last train step", [_fmt(s["last_step"]) for s in sums])]
  rows += [(f"valid {m}", [_fmt(s["valid"].get(m)) for s in sums]) for m in metrics]
  rows += [(f"test {m}", [_fmt(s["test"].get(m)) for s in sums]) for m in metrics]
  rows += [("train_seconds", [_fmt(s["train_seconds"], 1) for s in sums]),
           ("git", [_fmt(s["git"]) for s in sums])]
  head = "| | " + " | ".join(_fmt(label) for label in labels) + " |"
  lines = [head, "|---" * (len(labels) + 1) + "|"]
  lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
  return lines


# ---- The report ---------------------------------------------------------------------------

def write_report(runs: list[dict], out_dir: str, metric: str | None = None) -> str:
  """Writes the PNG curves and report.md for `runs` (from `load_run`) into `out_dir`.

  `metric` is the validation metric to plot (default: the first run's
  config.eval.select_metric, else ndcg@10). Returns report.md's path.
  """
  if not runs:
    raise ValueError("write_report needs at least one run")
  metric = metric or select_metric(runs)
  labels = _labels(runs)
  os.makedirs(out_dir, exist_ok=True)
  _figure_class()  # fail before writing anything if matplotlib is missing
  families = [
      ("loss.png", "training loss", [("train", "loss", _loss_keys(runs))]),
      ("valid.png", f"validation {metric}",
       [("valid", m, [m]) for m in (metric, "excl/" + metric, "raw/" + metric)]),
      ("throughput.png", "throughput",
       [("train", k, [k]) for k in ("steps_per_s", "targets_per_s", "step_time_s")]),
  ]
  written, missing = [], []
  for filename, title, panels in families:
    if _plot_family(os.path.join(out_dir, filename), title, panels, runs, labels):
      written.append((filename, title))
    else:
      missing.append(title)
  lines = ["# Training report", ""]
  lines += [f"- **{label}**: `{os.path.abspath(run['workdir'])}`"
            for run, label in zip(runs, labels)]
  lines += ["", "Best step: the run's validation pick (final.json; for a run without it, "
            "the best config.eval.select_metric in metrics.jsonl). `excl/`: items already "
            "in the history excluded from the ranking.", ""]
  lines += _table(runs, labels, metric)
  for filename, title in written:
    lines += ["", f"## {title[0].upper() + title[1:]}", "", f"![{title}]({filename})"]
  if missing:
    lines += ["", "Not logged by any run (no plot): " + ", ".join(missing) + "."]
  path = os.path.join(out_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def main(argv: list[str]) -> None:
  from absl import app, flags

  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  workdirs = [flags.FLAGS.workdir] + [d for d in (flags.FLAGS.compare or "").split(",") if d]
  out_dir = flags.FLAGS.out or os.path.join(flags.FLAGS.workdir, "report")
  try:
    runs = [load_run(d) for d in workdirs]
    path = write_report(runs, out_dir, flags.FLAGS.metric)
  except (FileNotFoundError, ValueError, ImportError) as e:
    sys.exit(f"error: {e}")
  pngs = sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))
  print(f"wrote {path} ({len(runs)} run{'s' * (len(runs) > 1)}; plots: {', '.join(pngs)})")


def _define_flags() -> None:
  """Flags exist only when this module is the program: importing `load_run` and
  `write_report` elsewhere (tests, notebooks) defines no absl flags that could clash
  with the other entry points' (--workdir)."""
  from absl import flags
  flags.DEFINE_string("workdir", None, "Training run directory (has metrics.jsonl).")
  flags.DEFINE_string("compare", "", "Comma-separated further run directories to overlay.")
  flags.DEFINE_string("out", None, "Output directory; default <workdir>/report.")
  flags.DEFINE_string("metric", None, "Validation metric to plot; default the first run's "
                      "config.eval.select_metric, else ndcg@10.")
  flags.mark_flag_as_required("workdir")


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main)
