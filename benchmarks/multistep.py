"""Multi-step quality: how well Seq2Seq and SASRec (rolled out) predict each user's
next k items (default 5).

Protocol: each user's last k items are the future; the models are trained on a split
that sets them aside (`data.leave_last_k=k`: training sees seq[:-k-2], model selection
on validation item seq[-k-2], as usual), so no future item was ever trained on. Users
with at least k + 3 items are evaluated from history seq[:-k] (history items excluded
from every list). For every model:
  * top-K of the first-step scores (the usual next-item ranking): Recall@10 and
    NDCG@10 of the k true items (set-based), and the top-5 read as a sequence;
  * greedy and beam generation of k items (no repeats): the best sequence's recall of
    the k true items (set-based) and its order-aware NDCG / exact-position accuracy.
BERT4Rec (no generation interface) gets the top-K rows only.

  python benchmarks/multistep.py --dataset=ml1m --max_len=50 --epochs=40
  # tiny check:
  python benchmarks/multistep.py --dataset=ml1m --smoke --tag=multistep_smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)
from quality_table import add_run_flags, build_config  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import metrics  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.infer.generate import GenerateConfig, make_generate_fn  # noqa: E402
from seqrec_jax.infer.trained import load_trained_run  # noqa: E402
from seqrec_jax.train import steps  # noqa: E402
from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402


def _batches(arrays: pipeline.FutureArrays, size: int):
  n = len(arrays)
  for start in range(0, n, size):
    rows = np.arange(start, start + size)
    valid = rows < n
    rows = np.where(valid, rows, 0)  # fixed shapes: pad the last batch with row 0
    yield arrays.history[rows], arrays.seen[rows], arrays.future[rows], valid


def evaluate_multistep(model, params, arrays: pipeline.FutureArrays, k: int, beams: int,
                       batch_size: int = 256) -> dict[str, dict[str, float]]:
  """Mean multi-step metrics per method ('top10', 'greedy', 'beam<W>')."""
  num_items = model.num_items

  @jax.jit
  def ranked_top(params, history, seen):
    scores = model.apply({"params": params}, history, method=steps.item_scores)
    return metrics.top_k_items(scores, 10, num_items, seen=seen)  # [B, 10]

  generators = {}
  if hasattr(model, "prefill"):
    common_kw = dict(steps=k, no_repeat_history=True, no_repeat_generated=True)
    generators["greedy"] = make_generate_fn(model, GenerateConfig(method="greedy", **common_kw))
    generators[f"beam{beams}"] = make_generate_fn(
        model, GenerateConfig(method="beam", beams=beams, **common_kw))
  sums: dict[str, dict[str, float]] = {}
  count = 0
  key = jax.random.PRNGKey(0)

  def add(method: str, values: dict, valid: np.ndarray) -> None:
    acc = sums.setdefault(method, {})
    for name, v in values.items():
      acc[name] = acc.get(name, 0.0) + float(np.asarray(v)[valid].sum())

  for history, seen, future, valid in _batches(arrays, batch_size):
    fut = jnp.asarray(future)
    top = ranked_top(params, history, seen)
    at10 = metrics.multistep_set_metrics(top, fut)
    at5 = metrics.multistep_set_metrics(top[:, :k], fut)
    seq = metrics.sequence_metrics(top[:, :k], fut)
    add("top10", {f"recall@{k}": at5["recall"], "recall@10": at10["recall"],
                  "ndcg@10": at10["ndcg"], f"seq_ndcg@{k}": seq["ndcg"],
                  "exact": seq["exact"]}, valid)
    for method, fn in generators.items():
      best = fn(params, history, seen, key).items[:, 0]  # [B, k]
      sets = metrics.multistep_set_metrics(best, fut)
      seq = metrics.sequence_metrics(best, fut)
      add(method, {f"recall@{k}": sets["recall"], f"seq_ndcg@{k}": seq["ndcg"],
                   "exact": seq["exact"]}, valid)
    count += int(valid.sum())
  return {m: {name: v / max(count, 1) for name, v in acc.items()} | {"users": count}
          for m, acc in sums.items()}


def markdown(result: dict) -> str:
  k = result["k"]
  cols = [f"recall@{k}", "recall@10", "ndcg@10", f"seq_ndcg@{k}", "exact"]
  m = result["meta"]["machine"]
  lines = [f"# Multi-step: next {k} items on {result['dataset']}", "",
           f"Each user's last {k} items are the future (never trained on: "
           f"data.leave_last_k={k}); history items excluded; {result['users']} users.",
           f"top10 = top-10 of the first-step scores (its first {k} read as a sequence); "
           f"greedy/beam = the best generated sequence of {k} items (no repeats).", "",
           f"Machine: {m['backend']} ({m['device_kind']}), {m['cpu_count']} CPUs, git {m['git']}, "
           f"{m['time']}. Command: `{result['meta']['command']}`", "",
           "| model | method | " + " | ".join(cols) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in cols) + " |"]
  for row in result["rows"]:
    vals = [f"{row['metrics'][c]:.4f}" if c in row["metrics"] else "" for c in cols]
    lines.append(f"| {row['model']} | {row['method']} | " + " | ".join(vals) + " |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="ml1m")
  parser.add_argument("--models", default="seq2seq,sasrec")
  parser.add_argument("--k", type=int, default=5)
  parser.add_argument("--beams", type=int, default=4)
  add_run_flags(parser)
  parser.add_argument("--eval_batch", type=int, default=256)
  parser.add_argument("--tag", default="")
  parser.add_argument("--workdir_root", default="/tmp/seqrec_multistep")
  parser.add_argument("--retrain", action="store_true")
  args = parser.parse_args()
  tag = args.tag or f"multistep_{args.dataset}"

  rows, users = [], 0
  for model_name in args.models.split(","):
    cfg = build_config(model_name, args.dataset, args)
    cfg.data.leave_last_k = args.k
    if model_name == "seq2seq":
      cfg.task.future_k = max(cfg.task.future_k, args.k)
    workdir = os.path.join(args.workdir_root, tag, f"{model_name}_{args.dataset}_last{args.k}")
    if args.retrain or not os.path.exists(os.path.join(workdir, "final.json")):
      print(f"== training {model_name} ({workdir})", flush=True)
      train_and_evaluate(cfg, workdir)
    run = load_trained_run(workdir)
    arrays = pipeline.future_arrays(run.dataset, args.k, run.cfg.model.max_len)
    t = time.time()
    result = evaluate_multistep(run.model, jax.device_get(run.params), arrays, args.k,
                                args.beams, args.eval_batch)
    print(f"== {model_name}: evaluated {len(arrays)} users in {time.time() - t:.1f}s", flush=True)
    for method, values in result.items():
      users = values.pop("users")
      rows.append({"model": model_name, "method": method, "metrics": values,
                   "workdir": workdir, "best_step": run.meta["step"]})
  out = {"dataset": args.dataset, "k": args.k, "users": users, "rows": rows,
         "meta": {"machine": common.machine(), "command": " ".join(["python"] + sys.argv)}}
  os.makedirs(common.RESULTS, exist_ok=True)
  stem = os.path.join(common.RESULTS, tag)
  with open(stem + ".json", "w") as f:
    json.dump(out, f, indent=2)
  with open(stem + ".md", "w") as f:
    f.write(markdown(out))
  print(markdown(out))
  print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
  main()
