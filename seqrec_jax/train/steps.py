"""Pure, jitted train steps with explicit shardings and donation (evaluation steps:
`seqrec_jax/evaluation.py`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import optax
from jax.sharding import Mesh

from seqrec_jax import parallel
from seqrec_jax.train.objectives import LossFn
from seqrec_jax.train.state import TrainState


def train_step(state: TrainState, batch: dict, *, loss_fn: LossFn,
               tx: optax.GradientTransformation) -> tuple[TrainState, dict]:
  """One optimiser update. Randomness is `fold_in(state.rng, step)`: resumable."""
  rng = jax.random.fold_in(state.rng, state.step)
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  out = {"loss": loss, "grad_norm": optax.tree.norm(grads),
         "param_norm": optax.tree.norm(params), **aux}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), out


def jit_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, state_sh: Any,
                   mesh: Mesh):
  """`(state, batch) -> (state, metrics)`, state donated, batch split on `data`."""
  fn = lambda state, batch: train_step(state, batch, loss_fn=loss_fn, tx=tx)
  return jax.jit(fn, in_shardings=(state_sh, parallel.batch_sharding(mesh)),
                 out_shardings=(state_sh, parallel.replicated(mesh)), donate_argnums=0)


def train_steps(state: TrainState, data: Any, *, loss_fn: LossFn,
                tx: optax.GradientTransformation, num_steps: int,
                batch_fn: Callable[[Any, jax.Array], dict], batch_sh: Any = None
                ) -> tuple[TrainState, dict]:
  """`num_steps` updates in one `lax.scan`; step s trains on `batch_fn(data, s)`.

  The device-resident path: `data` lives on the device and `batch_fn` assembles the
  batch there (`data.device_data.causal_batch`), so nothing crosses from the host.
  Each step is `train_step`, so N scanned steps equal N single steps.
  -> (state, metrics with a leading [num_steps] axis).
  """

  def body(state, _):
    batch = batch_fn(data, state.step)  # [B, L] each
    if batch_sh is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sh)
    return train_step(state, batch, loss_fn=loss_fn, tx=tx)

  return jax.lax.scan(body, state, None, length=num_steps)


class TrainSteps:
  """`(state, data, num_steps) -> (state, stacked metrics)`: `train_steps` jitted once
  per distinct `num_steps`, state donated, data replicated, batches split on `data`."""

  def __init__(self, loss_fn: LossFn, tx: optax.GradientTransformation, state_sh: Any,
               mesh: Mesh, batch_fn: Callable[[Any, jax.Array], dict]):
    self._args = dict(loss_fn=loss_fn, tx=tx, batch_fn=batch_fn,
                      batch_sh=parallel.batch_sharding(mesh))
    self._state_sh, self._rep = state_sh, parallel.replicated(mesh)
    self._fns: dict[int, Any] = {}

  def jitted(self, num_steps: int):
    """The jitted function for `num_steps` (for `.lower(state, data).compile()`)."""
    if num_steps not in self._fns:
      fn = functools.partial(train_steps, num_steps=num_steps, **self._args)
      self._fns[num_steps] = jax.jit(fn, in_shardings=(self._state_sh, self._rep),
                                     out_shardings=(self._state_sh, self._rep),
                                     donate_argnums=0)
    return self._fns[num_steps]

  def __call__(self, state: TrainState, data: Any, num_steps: int) -> tuple[TrainState, dict]:
    return self.jitted(num_steps)(state, data)
