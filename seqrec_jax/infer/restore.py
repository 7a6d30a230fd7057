"""`restore(workdir)`: any finished (or running) training run, ready for inference.

Reads the run's saved config, its data and the best-on-validation parameters of its
recommender: the model of an MLE run; for an adversarial run the generator's base
model or, with `gan.recommender="discriminator"`, the discriminator. Nothing here
imports the training code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from flax import linen as nn

from seqrec_jax import config as config_lib
from seqrec_jax import models, parallel
from seqrec_jax.data.dataset import LeaveOneOut, SequenceDataset, split_for
from seqrec_jax.data.load import load_dataset
from seqrec_jax.models.adversarial import build_discriminator
from seqrec_jax import checkpoint


@dataclasses.dataclass
class Restored:
  """A run's config, data, recommender module and best parameters."""

  cfg: Any
  dataset: SequenceDataset
  split: LeaveOneOut
  mesh: Any
  model: Any  # the recommender (scoring interface: encode, item_table)
  params: Any  # best-on-validation, sharded like in training
  params_sh: Any
  meta: dict  # the best checkpoint's metadata (step, epoch, valid metrics)
  kind: str  # "mle" | "adversarial"


def recommender(cfg, num_items: int, dataset: SequenceDataset | None = None) -> nn.Module:
  """The module a run of `cfg` recommends with (what its `best/` checkpoint holds);
  `dataset` gives the item text embeddings a text `model.item_repr` needs."""
  if cfg.gan.enabled and cfg.gan.recommender == "discriminator":
    return build_discriminator(cfg, num_items)
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel
  # values=False: a text_finetune encoder's inputs are checkpointed parameters
  features = text.item_features(cfg, dataset, values=False) if dataset is not None else {}
  return models.build_model(cfg.model, num_items, **features)


def restore(workdir: str) -> Restored:
  """Loads `workdir`'s config and data and restores its recommender's best parameters."""
  cfg = config_lib.load_config(workdir)
  dataset = load_dataset(cfg.data)
  split = split_for(cfg.data, dataset, cfg.model.get("time_features", ""))
  mesh = parallel.make_mesh(cfg.mesh.shape, cfg.mesh.axes)
  model = recommender(cfg, dataset.num_items, dataset)
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
  return Restored(cfg=cfg, dataset=dataset, split=split, mesh=mesh, model=model, params=params,
                  params_sh=params_sh, meta=meta, kind="adversarial" if cfg.gan.enabled else "mle")
