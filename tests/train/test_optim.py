"""Optimizer: the parameter moving average and what evaluation uses."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from seqrec_jax import parallel
from seqrec_jax.train import optim
from seqrec_jax.train.state import create_train_state


def optim_config(**kw):
  base = dict(lr=1e-2, b1=0.9, b2=0.98, weight_decay=0.0, clip_norm=1.0, warmup_steps=2,
              schedule="cosine", final_lr_frac=0.1, ema_decay=0.0)
  return ml_collections.ConfigDict({**base, **kw})


def test_params_ema_matches_a_plain_moving_average():
  decay = 0.9
  tx = optax.chain(optax.sgd(0.1), optim.params_ema(decay))
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  expected = np.array([1.0, -2.0])
  rng = np.random.default_rng(0)
  for t in range(30):
    grads = {"w": jnp.asarray(rng.normal(size=2), jnp.float32)}
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    d = min(decay, (1 + t) / (10 + t))
    expected = d * expected + (1 - d) * np.asarray(params["w"])
  np.testing.assert_allclose(optim.eval_params(params, state)["w"], expected, rtol=1e-5)
  assert not np.allclose(expected, params["w"])  # the average lags the parameters


def test_eval_params_is_params_without_ema():
  tx = optim.build_optimizer(optim_config(), total_steps=10)
  params = {"w": jnp.ones((2, 2))}
  assert optim.eval_params(params, tx.init(params)) is params


def test_bad_ema_decay_is_rejected_by_name():
  with pytest.raises(ValueError, match="ema_decay"):
    optim.build_optimizer(optim_config(ema_decay=1.5), total_steps=10)


def test_ema_state_is_sharded_like_its_parameters():
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  tx = optim.build_optimizer(optim_config(ema_decay=0.99), total_steps=10)
  init = lambda r: {"w": jax.random.normal(r, (4, 8))}
  state, state_sh = create_train_state(init, tx, seed=0, mesh=mesh)
  ema = optim.eval_params(state.params, state.opt_state)
  np.testing.assert_array_equal(ema["w"], state.params["w"])  # starts at the init
  assert optim.eval_params(state_sh.params, state_sh.opt_state)["w"] == state_sh.params["w"]


def test_skip_frozen_leaves_frozen_params_out_and_scales_the_encoder_lr():
  cfg = optim_config(warmup_steps=0, schedule="constant", clip_norm=1e6)
  tx = optim.build_optimizer(cfg, 10, skip_frozen=True, encoder_lr_scale=0.1)
  w = jnp.ones((3, 2))
  params = {"head": w, "text_layers": {"k": w}, "frozen_hidden": jnp.ones((50, 4))}
  state = tx.init(params)
  # no Adam moments for the frozen leaf: only the two [3, 2] matrices (mu, nu each)
  sizes = sorted(x.size for x in jax.tree.leaves(state) if getattr(x, "ndim", 0) == 2)
  assert sizes == [6, 6, 6, 6]
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, state, params)
  np.testing.assert_allclose(np.asarray(updates["text_layers"]["k"]),
                             0.1 * np.asarray(updates["head"]), rtol=1e-5)
  assert float(jnp.abs(updates["head"]).min()) > 0
  assert not np.asarray(updates["frozen_hidden"]).any()
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  sh = parallel.optimizer_shardings(tx, jax.eval_shape(tx.init, params),
                                    jax.tree.map(lambda _: parallel.replicated(mesh), params),
                                    mesh)
  assert len(jax.tree.leaves(sh)) == len(jax.tree.leaves(state))


def test_eval_params_merges_the_group_averages_of_skip_frozen():
  """text_finetune with an average: each multi_transform group keeps its own `ema` (with
  MaskedNode where another group owns a leaf); evaluation gets every trained leaf's
  average and the frozen leaf as it is."""
  cfg = optim_config(warmup_steps=0, schedule="constant", clip_norm=1e6, ema_decay=0.5)
  tx = optim.build_optimizer(cfg, 10, skip_frozen=True, encoder_lr_scale=0.1)
  params = {"head": jnp.ones((3, 2)), "text_layers": {"k": jnp.ones((3, 2))},
            "frozen_hidden": jnp.full((5, 4), 7.0)}
  state = tx.init(params)
  history = [params]
  for _ in range(3):
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  merged = optim.eval_params(params, state)
  for leaf in (("head",), ("text_layers", "k")):
    get = lambda tree: tree[leaf[0]] if len(leaf) == 1 else tree[leaf[0]][leaf[1]]
    expected = np.asarray(get(history[0]))
    for t, p in enumerate(history[1:]):
      d = min(0.5, (1 + t) / (10 + t))
      expected = d * expected + (1 - d) * np.asarray(get(p))
    np.testing.assert_allclose(np.asarray(get(merged)), expected, rtol=1e-6)
    assert not np.allclose(get(merged), get(params))  # an average, not the raw leaf
  assert merged["frozen_hidden"] is params["frozen_hidden"]
