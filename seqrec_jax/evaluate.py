"""`python -m seqrec_jax.evaluate --workdir=DIR [--split=valid|test|both]`.

Re-evaluates the best-on-validation checkpoint of a finished or running training run
(any kind: MLE, or an adversarial run's recommender), with the run's own config and
data, and prints every metric.
"""

from __future__ import annotations

import json

from absl import flags

from seqrec_jax import cli, evaluation
from seqrec_jax.data import pipeline
from seqrec_jax.infer.restore import restore

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_SPLIT = flags.DEFINE_enum("split", "both", ["valid", "test", "both"], "Which split.")
flags.mark_flag_as_required("workdir")


def evaluate(workdir: str, split: str = "both") -> dict:
  run = restore(workdir)
  cfg = run.cfg
  rank_fn = evaluation.jit_rank_step(run.model, run.dataset.num_items, run.params_sh, run.mesh,
                                     top_k=max(cfg.eval.ks))
  counts = evaluation.train_item_counts(run.split)
  out = {"best_step": run.meta["step"], "kind": run.kind}
  for stage in (["valid", "test"] if split == "both" else [split]):
    arrays = pipeline.eval_arrays(run.split, stage, cfg.model.max_len)
    out[stage] = evaluation.evaluate_stage(rank_fn, run.params, arrays, cfg.eval.batch_size,
                                           run.mesh, cfg.eval.ks, num_items=run.dataset.num_items,
                                           item_counts=counts,
                                           popularity_edges=tuple(cfg.eval.popularity_buckets),
                                           cold_items=run.split.cold)
  return out


def main(argv):
  del argv
  print(json.dumps(evaluate(_WORKDIR.value, _SPLIT.value), indent=2))


if __name__ == "__main__":
  cli.run(main)
