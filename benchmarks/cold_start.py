"""Cold start: items never seen in training, ranked by text-aware models and by content kNN.

    python benchmarks/cold_start.py --datasets=toys,ml1m --modes=id,text_only,text_adapter \
        --config.train.num_epochs=30 --tag=cold_start

Each run holds a random `--frac` of the items out of training entirely
(`data.cold_items_frac`: their interactions are removed from the training sequences and
kept in the evaluation histories and targets) and reports HR@10 / NDCG@10 (history items
excluded) over the test users whose target is a cold item, against the whole catalogue.
`id` cannot rank a cold item on purpose (its row is its random init): its figure is the
floor. Content kNN needs no training: a user's profile is the mean text embedding of the
latest `--knn_recent` history items, items are scored by cosine to it, over the whole
catalogue and, as the issue words it, over the cold items only (which tells the
baseline which items are cold: an upper bound for it, marked as such).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import stats  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli, text  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.data.dataset import split_for  # noqa: E402
from seqrec_jax.data.load import load_dataset  # noqa: E402
from seqrec_jax.train import engine, mle  # noqa: E402,F401  (mle registers the objective)

_DATASETS = flags.DEFINE_list("datasets", ["toys"], "presets.DATASETS names with item text.")
_MODES = flags.DEFINE_list("modes", ["id", "text_only", "text_adapter"], "model.item_repr values.")
_MODEL = flags.DEFINE_string("model", "sasrec", "Registered model with item text support.")
_FRAC = flags.DEFINE_float("frac", 0.1, "data.cold_items_frac.")
_RECENT = flags.DEFINE_integer("knn_recent", 5, "History items in a kNN user profile.")
_TAG = flags.DEFINE_string("tag", "cold_start", "Results file stem in benchmarks/results.")
_ROOT = flags.DEFINE_string("workdir_root", "runs/cold_start", "Runs go here.")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "Results folder.")
_VARIANT = flags.DEFINE_string("variant", "", "Preset variant, e.g. fast (presets.preset).")
_CONFIG = common.define_overrides()


def config(dataset: str, mode: str):
  cfg = common.preset_config(_MODEL.value, dataset, _VARIANT.value)
  # held-out items are removed from the training sequences on the host: the Grain path
  host = {"train.input": "grain"} if cfg.train.input == "device" else {}
  return common.with_overrides(cfg, {**host, **common.overrides(_CONFIG),
                                     "model.item_repr": mode, "data.cold_items_frac": _FRAC.value})


def mean_se(x: np.ndarray) -> dict:
  return {"mean": float(x.mean()) if x.size else float("nan"),
          "se": float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan"),
          "users": int(x.size)}


def cold_users(cfg) -> np.ndarray:
  """The test users (dataset indices) whose target is a cold item."""
  split = split_for(cfg.data, load_dataset(cfg.data))
  arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
  n = len(arrays)
  return np.asarray(arrays.users)[:n][split.cold[arrays.targets[:n]]]


def knn(cfg) -> dict:
  """Content kNN on the test users whose target is cold."""
  data = load_dataset(cfg.data)
  split = split_for(cfg.data, data)
  emb = text.load_item_embeddings(cfg, data)  # [V + 1, T], rows L2-normalised
  emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
  arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
  n = len(arrays)
  targets = arrays.targets[:n]
  rows = np.flatnonzero(split.cold[targets])
  out = {}
  for name, candidates in (("knn_all_items", np.ones(data.num_items + 1, bool)),
                           ("knn_cold_items_only", split.cold.copy())):
    candidates[0] = False
    ranks = []
    for r in rows:
      hist = arrays.history[r][arrays.history[r] > 0]
      profile = emb[hist[-_RECENT.value:]].mean(0)
      scores = emb @ profile
      allowed = candidates.copy()
      allowed[hist] = False
      scores = np.where(allowed, scores, -np.inf)
      t = targets[r]
      ranks.append(int((scores >= scores[t]).sum()) - 1)  # 0-based, pessimistic ties
    ranks = np.asarray(ranks, np.int64)
    out[name] = {m: mean_se(stats.per_user(ranks, m)) for m in ("hr@10", "ndcg@10")}
  return out


def main(argv):
  del argv
  meta = common.results_meta()
  rows = []
  for dataset in _DATASETS.value:
    for mode in _MODES.value:
      cfg = config(dataset, mode)
      workdir = os.path.join(_ROOT.value, f"{_MODEL.value}_{dataset}_{mode}")
      final = common.finished_run(cfg, workdir)
      t = final["test"]
      cold = stats.summarize(stats.restrict(stats.load_ranks(workdir), cold_users(cfg)),
                             ["ndcg@10", "hr@10"], excl=True)
      rows.append({"dataset": dataset, "method": mode, "git": common.run_git(final),
                   "cold_users": t.get("cold/users", 0),
                   "hr@10": t.get("excl/cold/hr@10"), "ndcg@10": t.get("excl/cold/ndcg@10"),
                   "ndcg@10_se": cold["ndcg@10"]["se"],
                   "all_users_excl_ndcg@10": t["excl/ndcg@10"]})
      print(f"{dataset} {mode}: cold ndcg@10 {rows[-1]['ndcg@10']}", flush=True)
    for name, res in knn(config(dataset, "id")).items():
      rows.append({"dataset": dataset, "method": name, "cold_users": res["ndcg@10"]["users"],
                   "hr@10": res["hr@10"]["mean"], "ndcg@10": res["ndcg@10"]["mean"],
                   "ndcg@10_se": res["ndcg@10"]["se"]})
  out = {**meta, "model": _MODEL.value, "variant": _VARIANT.value, "frac": _FRAC.value,
         "overrides": common.overrides(_CONFIG), "rows": rows}
  lines = [f"Cold start: {_FRAC.value:.0%} of items never trained on; test users whose target "
           "is cold, history items excluded, ranked against the whole catalogue (except "
           "'knn_cold_items_only'). " + common.describe(out), "",
           "| dataset | method | cold-target users | HR@10 | NDCG@10 ± SE |",
           "|---|---|---|---|---|"]
  for r in rows:
    fmt = lambda v: "–" if v is None else f"{v:.4f}"
    lines.append(f"| {r['dataset']} | {r['method']} | {r['cold_users']} | {fmt(r['hr@10'])} | "
                 f"{fmt(r['ndcg@10'])} ± {fmt(r.get('ndcg@10_se'))} |")
  common.write_results(os.path.join(_OUT.value, _TAG.value), out, "\n".join(lines) + "\n")


if __name__ == "__main__":
  cli.run(main)
