"""`python -m seqrec_jax.evaluate --workdir=DIR [--split=valid|test|both]`.

Re-evaluates the best-on-validation checkpoint of a finished or running training run,
with the run's own config and data, and prints every metric.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from seqrec_jax.data import pipeline
from seqrec_jax.infer.trained import load_trained_run
from seqrec_jax.train import loop, steps

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_SPLIT = flags.DEFINE_enum("split", "both", ["valid", "test", "both"], "Which split.")
flags.mark_flag_as_required("workdir")


def evaluate(workdir: str, split: str = "both") -> dict:
  run = load_trained_run(workdir)
  cfg = run.cfg
  rank_fn = steps.jit_rank_step(run.model, run.dataset.num_items, run.params_sh, run.mesh)
  out = {"best_step": run.meta["step"]}
  for stage in (["valid", "test"] if split == "both" else [split]):
    arrays = pipeline.eval_arrays(run.split, stage, cfg.model.max_len)
    out[stage] = loop.evaluate_stage(rank_fn, run.params, arrays, cfg.eval.batch_size, run.mesh,
                                     cfg.eval.ks)
  return out


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  print(json.dumps(evaluate(_WORKDIR.value, _SPLIT.value), indent=2))


if __name__ == "__main__":
  app.run(main)
