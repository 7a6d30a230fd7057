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

Each model trains by `train_and_evaluate` (the engine) from its preset
configs/<model>_<dataset>.py ("synthetic": configs/default.py with the model swapped)
plus the shared `--config.a.b=v` overrides (parsed by ml_collections against the base
config); the picked model is read back with `seqrec_jax.infer.restore`. A finished run
is reused (the row keeps the revision it was made with) unless --retrain.

  python benchmarks/multistep.py --dataset=ml1m --config.model.max_len=50 \\
      --config.train.num_epochs=40
  # tiny check:
  python benchmarks/multistep.py --dataset=synthetic --variant=smoke --tag=multistep_smoke
"""

from __future__ import annotations

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli, metrics, models  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.infer import restore  # noqa: E402
from seqrec_jax.infer.generate import GenerateConfig, make_generate_fn  # noqa: E402
from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402

_DATASET = flags.DEFINE_string("dataset", "ml1m", "a presets.DATASETS name or 'synthetic'")
_MODELS = flags.DEFINE_string("models", "seq2seq,sasrec", "comma-separated model names")
_K = flags.DEFINE_integer("k", 5, "future items per user")
_BEAMS = flags.DEFINE_integer("beams", 4, "beam width")
_VARIANT = flags.DEFINE_string("variant", "", "preset variant (get_config argument), e.g. smoke")
_EVAL_BATCH = flags.DEFINE_integer("eval_batch", 256, "users per evaluation batch")
_TAG = flags.DEFINE_string("tag", "", "results file name (default multistep_<dataset>)")
_WORKDIR_ROOT = flags.DEFINE_string("workdir_root", "/tmp/seqrec_multistep", "runs go here")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_RETRAIN = flags.DEFINE_bool("retrain", False, "delete a finished run and train it again")
_CONFIG = common.define_overrides()


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
    scores = model.apply({"params": params}, history, method=models.item_scores)
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
  lines = [f"# Multi-step: next {k} items on {result['dataset']}", "",
           f"Each user's last {k} items are the future (never trained on: "
           f"data.leave_last_k={k}); history items excluded; {result['users']} users.",
           f"top10 = top-10 of the first-step scores (its first {k} read as a sequence); "
           f"greedy/beam = the best generated sequence of {k} items (no repeats).", "",
           common.describe(result), "",
           "| model | method | " + " | ".join(cols) + " | run's revision |",
           "| --- | --- | " + " | ".join("---:" for _ in cols) + " | --- |"]
  for row in result["rows"]:
    vals = [f"{row['metrics'][c]:.4f}" if c in row["metrics"] else "" for c in cols]
    lines.append(f"| {row['model']} | {row['method']} | " + " | ".join(vals) + f" | {row['git']} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  k, dataset = _K.value, _DATASET.value
  tag = _TAG.value or f"multistep_{dataset}"
  meta = common.results_meta(variant=_VARIANT.value, overrides=common.overrides(_CONFIG))
  rows, users = [], 0
  for model_name in filter(None, _MODELS.value.split(",")):
    cfg = common.with_overrides(common.preset_config(model_name, dataset, _VARIANT.value),
                                common.overrides(_CONFIG))
    cfg.data.leave_last_k = k
    if model_name == "seq2seq":
      cfg.task.future_k = max(cfg.task.future_k, k)
    workdir = os.path.join(_WORKDIR_ROOT.value, tag, f"{model_name}_{dataset}_last{k}")
    report = common.read_final(workdir)
    if report is not None and _RETRAIN.value:
      shutil.rmtree(workdir)
      report = None
    if report is None:
      print(f"== training {model_name} ({workdir})", flush=True)
      report = train_and_evaluate(cfg, workdir)
    run = restore(workdir)
    arrays = pipeline.future_arrays(run.dataset, k, run.cfg.model.max_len)
    t = time.time()
    result = evaluate_multistep(run.model, jax.device_get(run.params), arrays, k,
                                _BEAMS.value, _EVAL_BATCH.value)
    print(f"== {model_name}: evaluated {len(arrays)} users in {time.time() - t:.1f}s", flush=True)
    for method, values in result.items():
      users = values.pop("users")
      rows.append({"model": model_name, "method": method, "metrics": values,
                   "workdir": workdir, "best_step": run.meta["step"],
                   "git": common.run_git(report)})
  out = {**meta, "dataset": dataset, "k": k, "users": users, "rows": rows}
  stem = os.path.join(_OUT.value, tag)
  common.write_results(stem, out, markdown(out))
  print(markdown(out))
  print(f"wrote {stem}.md and {stem}.json")


if __name__ == "__main__":
  cli.run(main)
