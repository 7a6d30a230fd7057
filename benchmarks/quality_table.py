"""Quality table: SASRec, BERT4Rec and Seq2Seq trained with the same protocol on the
same data (leave-one-out, full ranking over the catalogue, model picked on validation,
test reported once), via `train_and_evaluate` with the configs/<model>_<dataset>.py
configs and shared overrides. Writes a markdown table and JSON into benchmarks/results/.

  python benchmarks/quality_table.py --datasets=ml1m,toys --max_len=50 --epochs=40
  # tiny check (seconds per model):
  python benchmarks/quality_table.py --datasets=ml1m --smoke --tag=smoke

A finished run (final.json in its workdir) is reused unless --retrain, so the script
can be stopped and rerun; an unfinished one resumes from its checkpoints.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402

MODELS = ("sasrec", "bert4rec", "seq2seq")


def parse_value(text: str):
  """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
  lowered = text.lower()
  if lowered in ("true", "false"):
    return lowered == "true"
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return text


SMOKE = {"model.max_len": 20, "model.embed_dim": 16, "model.mlp_dim": 32, "train.batch_size": 64,
         "train.num_epochs": 1, "train.eval_every_epochs": 1, "train.patience": 0,
         "train.log_every_steps": 20}


def build_config(model: str, dataset: str, args) -> object:
  """configs/<model>_<dataset>.py, then --smoke, then the command-line overrides."""
  module = importlib.import_module(f"configs.{model}_{dataset}")
  cfg = module.get_config(args.variant)
  if args.smoke:
    for key, value in SMOKE.items():
      section, field = key.split(".")
      cfg[section][field] = value
  if args.max_len:
    cfg.model.max_len = args.max_len
  if args.epochs:
    cfg.train.num_epochs = args.epochs
  if args.eval_every:
    cfg.train.eval_every_epochs = args.eval_every
  if args.patience is not None:
    cfg.train.patience = args.patience
  if args.batch_size:
    cfg.train.batch_size = args.batch_size
  for item in args.set:
    key, _, value = item.partition("=")
    section, field = key.split(".")
    new = parse_value(value)
    if isinstance(cfg[section][field], float) and isinstance(new, int):
      new = float(new)
    cfg[section][field] = new
  return cfg


def run_one(model: str, dataset: str, args) -> dict:
  cfg = build_config(model, dataset, args)
  workdir = os.path.join(args.workdir_root, args.tag, f"{model}_{dataset}")
  final = os.path.join(workdir, "final.json")
  if os.path.exists(final) and not args.retrain:
    print(f"== {model} on {dataset}: reusing {final}", flush=True)
    with open(final) as f:
      report = json.load(f)
  else:
    print(f"== {model} on {dataset} ({workdir})", flush=True)
    t = time.time()
    report = train_and_evaluate(cfg, workdir)
    report.setdefault("wall_seconds", time.time() - t)
  return {"dataset": dataset, "model": model, "workdir": workdir,
          "max_len": cfg.model.max_len, "epochs": cfg.train.num_epochs,
          "best_epoch": report.get("best_epoch"), "best_step": report.get("best_step"),
          "valid": {k: report["valid"][k] for k in ("hr@10", "ndcg@10") if k in report["valid"]},
          "test": {k: report["test"][k] for k in ("hr@10", "ndcg@10") if k in report["test"]},
          "train_seconds": report.get("train_seconds")}


def markdown(rows: list[dict], meta: dict) -> str:
  lines = [f"# Quality: {', '.join(sorted({r['dataset'] for r in rows}))}", "",
           "Leave-one-out, full ranking over all items, model picked on validation NDCG@10, "
           "test reported once.", "",
           f"Machine: {meta['machine']['backend']} ({meta['machine']['device_kind']}), "
           f"{meta['machine']['cpu_count']} CPUs, jax {meta['machine']['jax']}, git "
           f"{meta['machine']['git']}, {meta['machine']['time']}.", "",
           f"Command: `{meta['command']}`", "",
           "| dataset | model | max_len | epochs (best) | valid HR@10 | valid NDCG@10 | "
           "test HR@10 | test NDCG@10 | train s |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for r in rows:
    f = lambda d, k: f"{d[k]:.4f}" if k in d else "n/a"
    lines.append(f"| {r['dataset']} | {r['model']} | {r['max_len']} | {r['epochs']} "
                 f"({r['best_epoch']}) | {f(r['valid'], 'hr@10')} | {f(r['valid'], 'ndcg@10')} | "
                 f"{f(r['test'], 'hr@10')} | {f(r['test'], 'ndcg@10')} | "
                 f"{(r['train_seconds'] or 0):.0f} |")
  return "\n".join(lines) + "\n"


def add_run_flags(parser: argparse.ArgumentParser) -> None:
  """The flags `build_config` reads (shared with benchmarks/multistep.py)."""
  parser.add_argument("--variant", default="", help="config variant (get_config argument)")
  parser.add_argument("--smoke", action="store_true",
                      help="tiny model, one epoch: checks the script runs (seconds per model)")
  parser.add_argument("--max_len", type=int, default=0)
  parser.add_argument("--epochs", type=int, default=0)
  parser.add_argument("--eval_every", type=int, default=0)
  parser.add_argument("--patience", type=int, default=None)
  parser.add_argument("--batch_size", type=int, default=0)
  parser.add_argument("--set", action="append", default=[],
                      help="extra override section.field=value (repeatable)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--datasets", default="ml1m", help="comma-separated dataset names")
  parser.add_argument("--models", default=",".join(MODELS))
  add_run_flags(parser)
  parser.add_argument("--tag", default="quality")
  parser.add_argument("--workdir_root", default="/tmp/seqrec_quality")
  parser.add_argument("--retrain", action="store_true")
  args = parser.parse_args()

  rows = []
  meta = {"machine": common.machine(), "command": " ".join(["python"] + sys.argv)}
  os.makedirs(common.RESULTS, exist_ok=True)
  stem = os.path.join(common.RESULTS, args.tag)
  for dataset in args.datasets.split(","):
    for model in args.models.split(","):
      rows.append(run_one(model, dataset, args))
      with open(stem + ".json", "w") as f:  # after every run, so partial results survive
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
      with open(stem + ".md", "w") as f:
        f.write(markdown(rows, meta))
  print(markdown(rows, meta))
  print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
  main()
