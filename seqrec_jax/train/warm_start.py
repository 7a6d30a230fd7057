"""Warm start (`train.init_from`): begin a run from another run's latest train state.

The other run's parameters and optimizer moments are copied into this run's freshly
initialised state. Item tables may have grown (a dataset extended with new items by
`seqrec_jax.update` keeps every old item's dense id, so old rows stay where they were):
a leaf whose shape is larger on some axis keeps the old values in its leading slice and
its fresh initialisation (zeros for optimizer moments) in the new rows. Any other shape
difference is an error naming the parameter.

Counters: Adam's step count is carried over with its moments (so the bias correction
matches them); the learning-rate schedule and the parameter average restart with the
new run (its own warm-up and decay over its own budget).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import optax
from absl import logging

from seqrec_jax import checkpoint
from seqrec_jax import config as config_lib
from seqrec_jax import models
from seqrec_jax.data.load import load_dataset
from seqrec_jax.models import layers
from seqrec_jax.train import setup as setup_lib
from seqrec_jax.train.state import TrainState, state_shardings


def _path(keys) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keys)


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """The item counts before and after, and how many special rows follow the items."""

  old: int
  new: int
  special: int = 0


def grow(old: jax.Array, fresh: jax.Array, name: str = "", axis: int | None = None,
         items: Catalogue | None = None) -> jax.Array:
  """`old` carried into `fresh`'s shape. Along the item axis `axis` (rows 0 = padding,
  1..num_items, then `items.special` special rows) item rows keep their index, special
  rows move to follow the new items, and new items' rows (and table padding) stay
  fresh. Every other axis must be unchanged."""
  if axis is None or items is None or items.old == items.new:
    if old.shape != fresh.shape:
      raise ValueError(f"train.init_from: {name or 'a parameter'} has shape "
                       f"{tuple(old.shape)} there but {tuple(fresh.shape)} here; only item "
                       "axes that grew (new items) can be carried over")
    return old.astype(fresh.dtype)
  others_same = all(o == f for i, (o, f) in enumerate(zip(old.shape, fresh.shape)) if i != axis)
  if (old.ndim != fresh.ndim or not others_same or items.new < items.old
      or old.shape[axis] < items.old + 1 or fresh.shape[axis] < items.new + 1):
    raise ValueError(f"train.init_from: {name or 'a parameter'} has shape {tuple(old.shape)} "
                     f"there but {tuple(fresh.shape)} here, for {items.old} -> {items.new} "
                     "items; only item axes that grew (new items) can be carried over")
  old = old.astype(fresh.dtype)

  def at(start, stop):
    return tuple(slice(start, stop) if i == axis else slice(None) for i in range(old.ndim))

  out = fresh.at[at(0, items.old + 1)].set(old[at(0, items.old + 1)])
  k = min(items.special, old.shape[axis] - items.old - 1, fresh.shape[axis] - items.new - 1)
  if k > 0:
    out = out.at[at(items.new + 1, items.new + 1 + k)].set(old[at(items.old + 1,
                                                                  items.old + 1 + k)])
  return out


def item_axes(boxed_params: Any, old_params: Any, fresh_params: Any, items: Catalogue) -> Any:
  """Per parameter leaf: the index of its item axis, or None. Logical axis "vocab"
  where the model names one; else the single axis whose size changed by exactly the
  number of new items (e.g. an output bias [num_items + 1])."""
  specs = nn.get_partition_spec(boxed_params)

  def axis(spec, old, fresh):
    names = tuple(spec) if spec is not None else ()
    if layers.VOCAB in names:
      return names.index(layers.VOCAB)
    diff = [i for i, (o, f) in enumerate(zip(old.shape, fresh.shape)) if o != f]
    if (len(diff) == 1 and old.ndim == fresh.ndim
        and fresh.shape[diff[0]] - old.shape[diff[0]] == items.new - items.old):
      return diff[0]
    return None

  return jax.tree.map(axis, specs, old_params, fresh_params,
                      is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec) or x is None)


def grow_tree(old: Any, fresh: Any, axes: Any, items: Catalogue, prefix: str = "") -> Any:
  """`grow` on every leaf of two trees shaped like the parameters."""
  flat_axes = jax.tree.leaves(axes, is_leaf=lambda x: x is None)
  paths, treedef = jax.tree_util.tree_flatten_with_path(fresh)
  olds = treedef.flatten_up_to(old)
  out = [grow(o, f, prefix + _path(p), a, items)
         for (p, f), o, a in zip(paths, olds, flat_axes)]
  return jax.tree_util.tree_unflatten(treedef, out)


def merge_opt_state(fresh: Any, old: Any, params: Any, axes: Any, items: Catalogue) -> Any:
  """Old moments (and any other parameter-shaped state, e.g. the average) grown like
  the parameters; Adam's count carried over; other counters (the learning-rate
  schedule, the average's count) restart."""
  shape = jax.tree.structure(params)
  like_params = lambda x: jax.tree.structure(x) == shape and not isinstance(x, jax.Array)

  def merge(f, o):
    if like_params(f):
      return grow_tree(o, f, axes, items, "optimizer state/")
    return f if getattr(f, "ndim", 0) == 0 else grow(o, f, "optimizer state")

  out = jax.tree.map(merge, fresh, old, is_leaf=like_params)
  is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)
  return jax.tree.map(lambda f, o: f._replace(count=o.count) if is_adam(f) else f, out, old,
                      is_leaf=is_adam)


def merge_state(fresh: TrainState, old: TrainState, axes: Any, items: Catalogue) -> TrainState:
  """This run's state with `old`'s parameters and moments carried over."""
  return TrainState(step=fresh.step,
                    params=grow_tree(old.params, fresh.params, axes, items, "params/"),
                    opt_state=merge_opt_state(fresh.opt_state, old.opt_state, fresh.params,
                                              axes, items),
                    rng=fresh.rng)


def restore_other(init_from: str, tx: optax.GradientTransformation, mesh
                  ) -> tuple[Any, int]:
  """(train state, its num_items) of the newest restorable checkpoint of the run in
  `init_from`, laid out on `mesh` (its model built from its own saved config and data).
  Read-only: that run's folders are never changed, even when a step is damaged."""
  other = config_lib.load_config(init_from)
  from seqrec_jax import text  # pylint: disable=import-outside-toplevel
  other_data = load_dataset(other.data)
  num_items = other_data.num_items
  model = models.build_model(other.model, num_items,
                             **text.item_features(other, other_data, values=False))
  abstract, _ = state_shardings(setup_lib.init_fn(model, other.model.max_len), tx, mesh)
  ckpts = checkpoint.Checkpoints(init_from, read_only=True)
  try:
    restored = ckpts.restore_latest(abstract, None)
  finally:
    ckpts.close()
  if restored is None:
    raise FileNotFoundError(f"train.init_from: no checkpoint under {init_from}/checkpoints")
  return restored[0], num_items


def warm_start(fresh: TrainState, state_sh: Any, init_from: str, model: nn.Module,
               max_len: int, tx: optax.GradientTransformation, mesh) -> TrainState:
  """`fresh` (this run's initial state, of `model`) with `init_from`'s latest state
  carried over."""
  old, old_items = restore_other(init_from, tx, mesh)
  items = Catalogue(old=old_items, new=model.num_items,
                    special=getattr(model, "num_special_tokens", 0))
  boxed = jax.eval_shape(setup_lib.init_fn(model, max_len), jax.random.PRNGKey(0))
  axes = item_axes(boxed, old.params, fresh.params, items)
  state = jax.jit(lambda f, o: merge_state(f, o, axes, items), out_shardings=state_sh)(fresh, old)
  logging.info("warm start from %s (its step %d; items %d -> %d)", init_from, int(old.step),
               items.old, items.new)
  return state
