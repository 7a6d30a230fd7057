"""Loading a training run for inference: its config, data, model and best parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import linen as nn

from seqrec_jax import models, parallel
from seqrec_jax.data.dataset import LeaveOneOut, SequenceDataset, leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.train import checkpoint, loop


@dataclasses.dataclass
class TrainedRun:
  """A finished (or running) training run's config, data, model and best parameters."""

  cfg: Any
  dataset: SequenceDataset
  split: LeaveOneOut
  mesh: Any
  model: Any
  params: Any  # best-on-validation, sharded like in training
  params_sh: Any
  meta: dict  # the best checkpoint's metadata (step, epoch, valid metrics)


def load_trained_run(workdir: str) -> TrainedRun:
  """Loads `workdir`'s config and data and restores its best-on-validation parameters."""
  cfg = loop.load_config(workdir)
  dataset = load_dataset(cfg.data)
  split = leave_one_out(dataset, cfg.data.leave_last_k)
  mesh = parallel.make_mesh(cfg.mesh.shape, cfg.mesh.axes)
  model = models.build_model(cfg.model, dataset.num_items)
  dummy = np.zeros((1, cfg.model.max_len), np.int32)
  boxed = jax.eval_shape(lambda r: model.init({"params": r, "dropout": r}, dummy)["params"],
                         jax.random.PRNGKey(0))
  params_sh = parallel.param_shardings(boxed, mesh)
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          nn.meta.unbox(boxed), params_sh)
  ckpts = checkpoint.Checkpoints(workdir)
  try:
    params, meta = ckpts.restore_best(abstract)
  finally:
    ckpts.close()
  return TrainedRun(cfg=cfg, dataset=dataset, split=split, mesh=mesh, model=model,
                    params=params, params_sh=params_sh, meta=meta)
