"""Sharded full-ranking evaluation on a (4, 2) mesh equals the single-device result, and
no device holds a [users, catalogue] score array."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seqrec_jax import evaluation, metrics, models, parallel, sharded_ranking
from seqrec_jax.config import base_config
from seqrec_jax.train.setup import init_fn
from seqrec_jax.train.state import create_train_state

B, D, V, NUM_ITEMS = 16, 8, 46, 43  # rows past NUM_ITEMS are special tokens: never ranked


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  states = rng.normal(size=(B, D)).astype(np.float32)
  table = rng.normal(size=(V, D)).astype(np.float32)
  table[7] = table[3]  # exact ties between items 3 and 7
  targets = rng.integers(1, NUM_ITEMS + 1, B).astype(np.int32)
  targets[:4] = 3
  seen = rng.integers(0, NUM_ITEMS + 1, (B, 9)).astype(np.int32)  # 0 = padding, repeats
  seen[0, :2] = targets[0]  # the target itself is never excluded
  return states, table, targets, seen


def test_ranks_and_top_k_equal_the_single_device_result():
  states, table, targets, seen = _problem()
  scores = jnp.asarray(states) @ jnp.asarray(table).T
  mesh = parallel.make_mesh((4, 2), ("data", "model"))
  table_sh = jax.device_put(table, NamedSharding(mesh, P("model", None)))
  for excl in (None, seen):
    want = metrics.target_ranks(scores, jnp.asarray(targets), NUM_ITEMS,
                                seen=None if excl is None else jnp.asarray(excl))
    got = jax.jit(lambda s, t, g, e: sharded_ranking.target_ranks(
        s, t, g, NUM_ITEMS, mesh, seen=e))(states, table_sh, targets,
                                            np.zeros((B, 1), np.int32) if excl is None else excl)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    want_top = metrics.top_k_items(scores, 10, NUM_ITEMS,
                                   seen=None if excl is None else jnp.asarray(excl))
    got_top = sharded_ranking.top_k_items(jnp.asarray(states), table_sh, 10, NUM_ITEMS, mesh,
                                          seen=None if excl is None else jnp.asarray(excl))
    np.testing.assert_array_equal(np.asarray(got_top), np.asarray(want_top))


def _sasrec_state(mesh, num_items=101):
  cfg = base_config()
  cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = 12, 16, 32
  model = models.build_model(cfg.model, num_items)

  state, state_sh = create_train_state(init_fn(model, 12), optax.sgd(0.1), 0, mesh)
  return model, state, state_sh


def test_evaluation_on_a_model_sharded_mesh_equals_one_device():
  rng = np.random.default_rng(1)
  num_items = 101
  history = np.zeros((B, 12), np.int32)
  for b in range(B):
    n = rng.integers(1, 13)
    history[b, :n] = rng.integers(1, num_items + 1, n)
  targets = rng.integers(1, num_items + 1, B).astype(np.int32)
  results = []
  for shape in ((8, 1), (4, 2)):
    mesh = parallel.make_mesh(shape, ("data", "model"))
    model, state, state_sh = _sasrec_state(mesh, num_items)
    fn = evaluation.jit_rank_step(model, num_items, state_sh.params, mesh, top_k=5)
    bsh = parallel.batch_sharding(mesh)
    out = fn(state.params, *(jax.device_put(x, bsh) for x in (history, targets, history)))
    results.append({k: np.asarray(v) for k, v in out.items()})
    if shape == (4, 2):
      hlo = fn.lower(state.params, history, targets, history).compile().as_text()
      vocab = state.params["item_embedding"]["embedding"].shape[0]
      # per-device score blocks are [B/4, V/2]; a [*, V] f32 array would be a gathered row
      assert not re.search(rf"f32\[\d+,{vocab}\]", hlo)
      assert not re.search(rf"f32\[\d+,{num_items + 1}\]", hlo)
  for key in results[0]:
    np.testing.assert_allclose(results[0][key], results[1][key], atol=1e-5, err_msg=key)
