"""`python -m seqrec_jax.evaluate --workdir=DIR [--split=valid|test|both]`.

Re-evaluates the best-on-validation checkpoint of a finished or running training run,
with the run's own config and data, and prints every metric.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from seqrec_jax import models, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.train import checkpoint, loop, steps

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_SPLIT = flags.DEFINE_enum("split", "both", ["valid", "test", "both"], "Which split.")
flags.mark_flag_as_required("workdir")


def evaluate(workdir: str, split: str = "both") -> dict:
  import jax
  import numpy as np
  from flax import linen as nn
  cfg = loop.load_config(workdir)
  dataset = load_dataset(cfg.data)
  loo = leave_one_out(dataset)
  mesh = parallel.make_mesh(cfg.mesh.shape, cfg.mesh.axes)
  model = models.build_model(cfg.model, dataset.num_items)
  dummy = np.zeros((1, cfg.model.max_len), np.int32)
  boxed = jax.eval_shape(lambda r: model.init({"params": r, "dropout": r}, dummy)["params"],
                         jax.random.PRNGKey(0))
  params_sh = parallel.param_shardings(boxed, mesh)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.meta.unbox(boxed), params_sh)
  ckpts = checkpoint.Checkpoints(workdir)
  params, meta = ckpts.restore_best(abstract)
  rank_fn = steps.jit_rank_step(model, dataset.num_items, params_sh, mesh)
  out = {"best_step": meta["step"]}
  for stage in (["valid", "test"] if split == "both" else [split]):
    arrays = pipeline.eval_arrays(loo, stage, cfg.model.max_len)
    out[stage] = loop.evaluate_stage(rank_fn, params, arrays, cfg.eval.batch_size, mesh,
                                     cfg.eval.ks)
  ckpts.close()
  return out


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  print(json.dumps(evaluate(_WORKDIR.value, _SPLIT.value), indent=2))


if __name__ == "__main__":
  app.run(main)
