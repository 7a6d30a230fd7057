"""Warm start (train.init_from): old rows kept in grown item tables, fresh rows for new
items, special rows (the mask token) moved after the new items, Adam moments and count
carried over, schedules restarted, clear shape errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.train.setup import init_fn
from seqrec_jax.train.warm_start import Catalogue, grow, item_axes, merge_opt_state


def test_grow_keeps_item_rows_moves_special_rows_and_leaves_new_rows_fresh():
  items = Catalogue(old=3, new=5, special=1)
  old = jnp.arange(10.0).reshape(5, 2)  # rows: pad, items 1-3, mask token
  fresh = -jnp.ones((7, 2))
  out = np.asarray(grow(old, fresh, "item_embedding", axis=0, items=items))
  np.testing.assert_array_equal(out[:4], old[:4])  # padding + items 1..3
  np.testing.assert_array_equal(out[4:6], -1.0)  # new items 4, 5: fresh
  np.testing.assert_array_equal(out[6], old[4])  # the mask token follows the items
  with pytest.raises(ValueError, match=r"item_embedding has shape \(5, 2\) there but \(7, 3\)"):
    grow(old, jnp.zeros((7, 3)), "item_embedding", axis=0, items=items)
  with pytest.raises(ValueError, match=r"w has shape \(4, 2\) there but \(4, 3\) here"):
    grow(jnp.zeros((4, 2)), jnp.zeros((4, 3)), "w")  # e.g. embed_dim changed


def test_item_axes_follow_the_vocab_logical_axis():
  old_m, new_m = BERT4Rec(num_items=300, max_len=8), BERT4Rec(num_items=310, max_len=8)
  rng = jax.random.PRNGKey(0)
  boxed_new = jax.eval_shape(init_fn(new_m, 8), rng)
  old = jax.eval_shape(lambda r: nn.meta.unbox(init_fn(old_m, 8)(r)), rng)
  fresh = nn.meta.unbox(boxed_new)
  axes = item_axes(boxed_new, old, fresh, Catalogue(300, 310, 1))
  flat = {"/".join(str(k.key) for k in p): a
          for p, a in jax.tree_util.tree_flatten_with_path(axes, is_leaf=lambda x: x is None)[0]}
  table = [k for k in flat if "item_embedding" in k]
  assert table and all(flat[k] == 0 for k in table)
  assert all(a is None for k, a in flat.items() if "positions" in k or "blocks" in k)


def test_optimizer_state_moments_and_adam_count_carry_over():
  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 10, 100)))
  old_params = {"table": jnp.ones((4, 2)), "w": jnp.ones((2, 2))}
  new_params = {"table": jnp.zeros((6, 2)), "w": jnp.zeros((2, 2))}
  old = tx.init(old_params)
  for _ in range(4):  # count 4, non-zero moments
    _, old = tx.update(jax.tree.map(jnp.ones_like, old_params), old, old_params)
  axes = {"table": 0, "w": None}
  merged = merge_opt_state(tx.init(new_params), old, new_params, axes, Catalogue(3, 5))
  find = lambda tree, t: [s for s in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, t))
                          if isinstance(s, t)]
  adam, old_adam = find(merged, optax.ScaleByAdamState)[0], find(old, optax.ScaleByAdamState)[0]
  assert int(adam.count) == 4
  np.testing.assert_array_equal(adam.mu["table"][:4], old_adam.mu["table"])
  np.testing.assert_array_equal(adam.mu["table"][4:], 0.0)
  np.testing.assert_array_equal(adam.nu["w"], old_adam.nu["w"])
  schedules = find(merged, optax.ScaleByScheduleState)
  assert schedules and all(int(s.count) == 0 for s in schedules)  # warm-up again
  tx.update(jax.tree.map(jnp.ones_like, new_params), merged, new_params)  # a valid state
