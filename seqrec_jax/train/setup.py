"""The first thing every MLE training run builds: mesh, model, task, optimizer, state.

Used by the "mle" objective (`train/mle.py`) and the benchmarks, so they time and train
the same setup.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optax
from jax.sharding import Mesh

from seqrec_jax import models, parallel
from seqrec_jax.data.dataset import LeaveOneOut
from seqrec_jax.train import optim, tasks
from seqrec_jax.train.state import TrainState, create_train_state


@dataclasses.dataclass
class Setup:
  mesh: Mesh
  model: Any  # flax.linen.Module
  task: tasks.Task
  tx: optax.GradientTransformation
  state: TrainState
  state_sh: Any  # shardings of `state`
  steps_per_epoch: int
  total_steps: int  # steps_per_epoch * config.train.num_epochs (the optimizer's schedule)


def build_mesh(cfg) -> Mesh:
  """The configured mesh; the train and eval batches must split evenly over `data`."""
  mesh = parallel.make_mesh(cfg.mesh.shape, cfg.mesh.axes)
  if cfg.train.batch_size % mesh.shape["data"] or cfg.eval.batch_size % mesh.shape["data"]:
    raise ValueError(f"config.train.batch_size={cfg.train.batch_size} and config.eval.batch_size="
                     f"{cfg.eval.batch_size} must be divisible by the data axis ({mesh.shape['data']})")
  return mesh


def init_fn(model, max_len: int):
  """`rng -> boxed params` of a model with the scoring interface (dummy [1, L] input)."""
  dummy = np.zeros((1, max_len), np.int32)
  return lambda rng: model.init({"params": rng, "dropout": rng}, dummy)["params"]


def build_setup(cfg, split: LeaveOneOut, mesh: Mesh | None = None) -> Setup:
  """Everything above for a validated config; the state is built on its shardings."""
  mesh = build_mesh(cfg) if mesh is None else mesh
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel
  model = models.build_model(cfg.model, split.data.num_items,
                             **text.item_features(cfg, split.data))
  task = tasks.build_task(cfg, model, split)
  steps_per_epoch = max(1, len(task.source) // cfg.train.batch_size)
  total_steps = steps_per_epoch * cfg.train.num_epochs
  tx = optim.build_optimizer(cfg.optim, total_steps,
                             skip_frozen=cfg.model.item_repr == "text_finetune",
                             encoder_lr_scale=cfg.model.finetune_lr_scale)
  state, state_sh = create_train_state(init_fn(model, cfg.model.max_len), tx, cfg.seed, mesh)
  return Setup(mesh, model, task, tx, state, state_sh, steps_per_epoch, total_steps)
