"""Where a trained model ranks the items a user has already seen.

On data without repeats (MovieLens: one rating per movie) every seen item ranked above
the target costs NDCG with exclude_seen off. For each run this reports, on the
validation split by default (the test split only for a final report):
  * the median full-ranking rank of the last history item (0 = top) and how often it
    is in the top 10 or above the target;
  * how many seen items rank above the target, by how far back they were seen;
  * NDCG@10 if the last k history items were excluded (k = 0, 1, 2, 5, 20); k = 0 is
    the usual figure, k = all is exclude_seen.

  python benchmarks/seen_ranks.py runs/sasrec_ml1m runs/other_run [--split=valid] \\
      [--out=benchmarks/results/seen_ranks_x.json]

Each run is read back with `seqrec_jax.infer.restore`; the JSON records this code's
revision and machine, and each run's own revision (its final.json "git").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import metrics, models  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.infer import restore  # noqa: E402

RECENCY = ((0, 1), (1, 5), (5, 20), (20, 50), (50, 200), (200, 10**9))  # items back
EXCLUDE_LAST = (0, 1, 2, 5, 20)


def last_k_items(seen: np.ndarray, k: int) -> np.ndarray:
  """The last k items of each left-packed, 0-padded history row (0 where shorter).
  [B, S] -> [B, k]"""
  n = (seen > 0).sum(1)  # [B]
  cols = n[:, None] - k + np.arange(k)[None]  # [B, k]
  return np.where(cols >= 0, np.take_along_axis(seen, np.maximum(cols, 0), 1), 0)


def seen_ranks(workdir: str, split: str = "valid", batch: int = 500) -> dict:
  run = restore(workdir)
  model = run.model

  @jax.jit
  def scores(params, history):  # [B, L] -> [B, V], as the evaluator scores
    return model.apply({"params": params}, history, method=models.item_scores)

  arrays = pipeline.eval_arrays(run.split, split, run.cfg.model.max_len)
  num_items = run.dataset.num_items
  last_rank, last_above, by_recency = [], [], np.zeros(len(RECENCY))
  excl = {k: [] for k in EXCLUDE_LAST}
  for start in range(0, len(arrays), batch):
    scores_dev = scores(run.params, arrays.history[start:start + batch])  # [B, V]
    targets = arrays.targets[start:start + batch]
    seen_rows = arrays.seen[start:start + batch]
    for k in EXCLUDE_LAST:  # ranked as the evaluator ranks (ties count against the target)
      dropped = jnp.asarray(last_k_items(seen_rows, k)) if k else None
      excl[k].append(np.asarray(metrics.target_ranks(scores_dev, jnp.asarray(targets),
                                                     num_items, dropped)))
    s = np.array(scores_dev)
    s[:, 0] = -np.inf
    s = s[:, :num_items + 1]  # alignment rows are never items
    target_score = s[np.arange(len(targets)), targets]  # [B]
    for row, seen in enumerate(seen_rows):
      seen = seen[seen > 0]  # in time order
      above = s[row, seen] > target_score[row]  # [n]
      back = seen.size - 1 - np.arange(seen.size)  # 0 = the last item
      for b, (lo, hi) in enumerate(RECENCY):
        by_recency[b] += above[(back >= lo) & (back < hi)].sum()
      last_rank.append(int((s[row] > s[row, seen[-1]]).sum()))
      last_above.append(bool(above[-1]))
  last_rank = np.array(last_rank)
  return {
      "workdir": workdir, "git": common.run_git(common.read_final(workdir)), "split": split,
      "users": len(arrays), "best_step": run.meta["step"],
      "last_item_median_rank": float(np.median(last_rank)),
      "last_item_in_top10": float(np.mean(last_rank < 10)),
      "last_item_above_target": float(np.mean(last_above)),
      "seen_above_target_per_user_by_items_back": {
          f"[{lo},{hi if hi < 10**9 else 'inf'})": float(v / len(arrays))
          for (lo, hi), v in zip(RECENCY, by_recency)},
      "ndcg@10_excluding_last_k": {
          str(k): float(metrics.ndcg_at_k(jnp.asarray(np.concatenate(v)), 10))
          for k, v in excl.items()},
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--split", default="valid", choices=["valid", "test"])
  parser.add_argument("--out", default="", help="also write the results here (.json)")
  args = parser.parse_args()
  results = [seen_ranks(w, args.split) for w in args.workdirs]
  for r in results:
    print(json.dumps(r, indent=1))
  if args.out:
    common.write_results(args.out.removesuffix(".json"), {**common.results_meta(), "runs": results})


if __name__ == "__main__":
  main()
