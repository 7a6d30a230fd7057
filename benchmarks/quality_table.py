"""Quality table: SASRec, BERT4Rec and Seq2Seq trained with the same protocol on the
same data (leave-one-out, full ranking over the catalogue, model picked on validation,
test reported once), each by `train_and_evaluate` (the engine's MLE run) from its
preset configs/<model>_<dataset>.py ("synthetic": configs/default.py with the model
swapped) plus the shared `--config.a.b=v` overrides, applied to every preset (parsed by
ml_collections against the base config: an unknown key fails by name). Writes a
markdown table and JSON (with the code revision of every row) into --out.

  python benchmarks/quality_table.py --datasets=ml1m,toys --config.model.max_len=50 \\
      --config.train.num_epochs=40 --config.optim.lr=0.003
  # tiny check (seconds per model):
  python benchmarks/quality_table.py --datasets=synthetic --variant=smoke --tag=smoke

A finished run (final.json in its workdir) is reused unless --retrain, so the script
can be stopped and rerun (the row keeps the revision that run was made with); an
unfinished one resumes from its checkpoints.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)
import stats  # noqa: E402

from absl import flags  # noqa: E402

from seqrec_jax import cli  # noqa: E402
from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402

MODELS = ("sasrec", "bert4rec", "seq2seq")
_DATASETS = flags.DEFINE_string("datasets", "ml1m", "comma-separated: presets.DATASETS names "
                                "or 'synthetic'")
_MODELS = flags.DEFINE_string("models", ",".join(MODELS), "comma-separated model names")
_VARIANT = flags.DEFINE_string("variant", "", "preset variant (get_config argument), e.g. smoke")
_TAG = flags.DEFINE_string("tag", "quality", "results file name")
_WORKDIR_ROOT = flags.DEFINE_string("workdir_root", "/tmp/seqrec_quality", "runs go here")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_RETRAIN = flags.DEFINE_bool("retrain", False, "delete a finished run and train it again")
_CONFIG = common.define_overrides()


def run_one(model: str, dataset: str) -> dict:
  cfg = common.with_overrides(common.preset_config(model, dataset, _VARIANT.value),
                              common.overrides(_CONFIG))
  workdir = os.path.join(_WORKDIR_ROOT.value, _TAG.value, f"{model}_{dataset}")
  report = common.read_final(workdir)
  if report is not None and _RETRAIN.value:
    shutil.rmtree(workdir)
    report = None
  reused = report is not None
  if reused:
    print(f"== {model} on {dataset}: reusing {workdir}/final.json", flush=True)
  else:
    print(f"== {model} on {dataset} ({workdir})", flush=True)
    t = time.time()
    report = train_and_evaluate(cfg, workdir)
    report.setdefault("wall_seconds", time.time() - t)
  keys = ("hr@10", "ndcg@10")
  ranks = stats.load_ranks(workdir)  # per-user test ranks: the standard errors
  test_se = stats.both_protocols(stats.summarize, ranks, metrics=keys)
  frozen = os.path.join(_OUT.value, f"{_TAG.value}_configs", f"{model}_{dataset}.json")
  os.makedirs(os.path.dirname(frozen), exist_ok=True)
  shutil.copyfile(os.path.join(workdir, "config.json"), frozen)  # the exact config that ran
  return {"dataset": dataset, "model": model, "workdir": workdir, "git": common.run_git(report),
          "config_file": os.path.relpath(frozen, common.REPO) if frozen.startswith(
              str(common.REPO)) else frozen, "test_se": test_se,
          "reused": reused, "max_len": cfg.model.max_len, "epochs": cfg.train.num_epochs,
          "best_epoch": report.get("best_epoch"), "best_step": report.get("best_step"),
          "valid": {k: report["valid"][k] for k in keys if k in report["valid"]},
          "test": {k: report["test"][k] for k in keys if k in report["test"]},
          "users": report["test"].get("users"), "train_seconds": report.get("train_seconds")}


def markdown(rows: list[dict], meta: dict) -> str:
  lines = [f"# Quality: {', '.join(sorted({r['dataset'] for r in rows}))}", "",
           "Leave-one-out, full ranking over all items, model picked on validation NDCG@10, "
           "test reported once.", "", common.describe(meta), "",
           "Test columns: mean ± standard error over users (per-user ranks, "
           "benchmarks/stats.py); 'excl': history items removed from the ranking "
           "(exclude_seen, the protocol of most S3-Rec-line code).", "",
           "| dataset | model | max_len | epochs (best) | valid NDCG@10 | "
           "test HR@10 | test NDCG@10 | excl HR@10 | excl NDCG@10 | users | train s | "
           "config | run's revision |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
           "| --- |"]
  for r in rows:
    f = lambda d, k: f"{d[k]:.4f}" if k in d else "n/a"
    se = lambda k: (f"{r['test_se'][k]['mean']:.4f} ± {r['test_se'][k]['se']:.4f}"
                    if k in r.get("test_se", {}) else "n/a")
    lines.append(f"| {r['dataset']} | {r['model']} | {r['max_len']} | {r['epochs']} "
                 f"({r['best_epoch']}) | {f(r['valid'], 'ndcg@10')} | {se('hr@10')} | "
                 f"{se('ndcg@10')} | {se('excl/hr@10')} | {se('excl/ndcg@10')} | {r['users']} | "
                 f"{(r['train_seconds'] or 0):.0f} | {r.get('config_file', '')} | "
                 f"{r['git']}{' (reused)' * r['reused']} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  meta = common.results_meta(overrides=common.overrides(_CONFIG), variant=_VARIANT.value)
  stem = os.path.join(_OUT.value, _TAG.value)
  rows = []
  for dataset in filter(None, _DATASETS.value.split(",")):
    for model in filter(None, _MODELS.value.split(",")):
      rows.append(run_one(model, dataset))
      # after every run, so partial results survive
      common.write_results(stem, {**meta, "rows": rows}, markdown(rows, meta))
  print(markdown(rows, meta))
  print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
  cli.run(main)
