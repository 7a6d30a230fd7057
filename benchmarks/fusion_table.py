"""Item-text fusion table: `model.item_repr` modes side by side at the same budget.

    python benchmarks/fusion_table.py --datasets=toys --modes=id,text_init,text_adapter,text_only \
        --config.train.num_epochs=30 --tag=fusion_toys

For each dataset and mode: the dataset's preset (configs/<model>_<dataset>.py) with the
shared `--config.a.b=v` overrides and `model.item_repr=<mode>`, trained by the engine
(picked on validation, tested once). Per row: exclude_seen test NDCG@10 / HR@10 with
standard errors from per-user ranks, the paired difference against `id` (same users)
with its standard error, and NDCG@10 by target popularity bucket (`pop<=5`, `pop6-20`,
`pop>20`). The text embeddings are prepared once per dataset (`prepare_text`). A
finished run is reused (its revision kept), an unfinished one resumes.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import stats  # noqa: E402

from absl import flags  # noqa: E402

from seqrec_jax import cli  # noqa: E402
from seqrec_jax.train import engine, mle  # noqa: E402,F401  (mle registers the objective)

_DATASETS = flags.DEFINE_list("datasets", ["toys"], "presets.DATASETS names with item text.")
_MODES = flags.DEFINE_list("modes", ["id", "text_init", "text_adapter", "text_only"],
                           "model.item_repr values.")
_MODEL = flags.DEFINE_string("model", "sasrec", "Registered model with item text support.")
_VARIANT = flags.DEFINE_string("variant", "", "Preset variant, e.g. fast (presets.preset).")
_TAG = flags.DEFINE_string("tag", "fusion", "Results file stem in benchmarks/results.")
_ROOT = flags.DEFINE_string("workdir_root", "runs/fusion", "Runs go here.")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "Results folder.")
_CONFIG = common.define_overrides()
BUCKETS = ("<=5", "6-20", ">20")


def run_row(dataset: str, mode: str) -> dict:
  cfg = common.preset_config(_MODEL.value, dataset, _VARIANT.value)
  cfg = common.with_overrides(cfg, {**common.overrides(_CONFIG), "model.item_repr": mode})
  workdir = os.path.join(_ROOT.value, f"{_MODEL.value}_{dataset}_{mode}")
  final = common.finished_run(cfg, workdir)
  ranks = stats.load_ranks(workdir)
  one = stats.summarize(ranks, ["ndcg@10", "hr@10"], excl=True)
  test = final["test"]
  return {"dataset": dataset, "mode": mode, "workdir": workdir, "git": common.run_git(final),
          "best_step": final["best_step"], "train_seconds": final["train_seconds"],
          "excl/ndcg@10": one["ndcg@10"], "excl/hr@10": one["hr@10"],
          "buckets": {b: {"users": test.get(f"excl/pop{b}/users", 0),
                          "ndcg@10": test.get(f"excl/pop{b}/ndcg@10")} for b in BUCKETS},
          "config": cfg.to_dict()}


def main(argv):
  del argv
  meta = common.results_meta()
  rows = []
  for dataset in _DATASETS.value:
    base = None
    for mode in _MODES.value:
      row = run_row(dataset, mode)
      if mode == "id":
        base = row
      elif base is not None:
        row["vs_id"] = stats.paired(stats.load_ranks(row["workdir"]),
                                    stats.load_ranks(base["workdir"]), ["ndcg@10"],
                                    excl=True)["ndcg@10"]
      row["bucket_se"] = stats.bucket_figures(stats.load_ranks(row["workdir"]),
                                        None if base is None or mode == "id"
                                        else stats.load_ranks(base["workdir"]),
                                        tuple(row["config"]["eval"]["popularity_buckets"]))
      rows.append(row)
      print(f"{dataset} {mode}: excl ndcg@10 {row['excl/ndcg@10']['mean']:.4f} ± "
            f"{row['excl/ndcg@10']['se']:.4f}", flush=True)
  out = {**meta, "model": _MODEL.value, "variant": _VARIANT.value,
         "overrides": common.overrides(_CONFIG), "rows": rows}
  common.write_results(os.path.join(_OUT.value, _TAG.value), out, markdown(out))


def markdown(out: dict) -> str:
  variant = f", variant {out['variant']}" if out.get("variant") else ""
  lines = [f"Item-text fusion ({out['model']}{variant}), exclude_seen test figures, same "
           f"budget per dataset; overrides {out['overrides']}. " + common.describe(out), "",
           "| dataset | item_repr | NDCG@10 | HR@10 | vs id (paired) | NDCG@10 pop<=5 | "
           "pop6-20 | pop>20 | best step | train s |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in out["rows"]:
    nd, hr = r["excl/ndcg@10"], r["excl/hr@10"]
    vs = r.get("vs_id")
    verdict = {"tie": "tie", "A better": f"{r['mode']} better", "B better": "id better"}
    vs_text = f"{vs['diff']:+.4f} ± {vs['se']:.4f} ({verdict[vs['verdict']]})" if vs else "–"
    def bucket(b: str) -> str:
      se = r.get("bucket_se", {}).get(b)
      if se is not None:  # from per-user ranks: mean ± SE, and the paired gain over id
        vs_b = se.get("vs_id")
        gain = (f"; vs id {vs_b['diff']:+.4f} ± {vs_b['se']:.4f}, "
                f"{vs_b['diff'] / max(vs_b['b'], 1e-12):+.0%}") if vs_b else ""
        return f"{se['mean']:.4f} ± {se['se']:.4f} (n={se['users']}{gain})"
      return ("–" if r["buckets"][b]["ndcg@10"] is None else
              f"{r['buckets'][b]['ndcg@10']:.4f} (n={r['buckets'][b]['users']})")
    lines.append(f"| {r['dataset']} | {r['mode']} | {nd['mean']:.4f} ± {nd['se']:.4f} | "
                 f"{hr['mean']:.4f} ± {hr['se']:.4f} | {vs_text} | {bucket('<=5')} | "
                 f"{bucket('6-20')} | {bucket('>20')} | {r['best_step']} | "
                 f"{r['train_seconds']:.0f} |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main)
