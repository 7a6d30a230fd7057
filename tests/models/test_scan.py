"""Scanned block stacks (`model.scan_layers`, `model.remat`) = the unrolled stack."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqrec_jax import parallel
from seqrec_jax.models import layers
from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.models.sasrec import SASRec
from seqrec_jax.train import objectives, optim
from seqrec_jax.train.state import create_train_state

NUM_ITEMS, L, BLOCKS = 30, 10, 3
LOSS = ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                       seen_margin=0.0))


def _model(cls, **kw):
  return cls(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=BLOCKS, num_heads=2,
             mlp_dim=32, dropout=0.0, emb_dropout=0.0, **kw)


def _batch(cloze: bool):
  rng = np.random.default_rng(0)
  lengths = np.array([3, 10, 6, 1, 8])
  inputs = np.zeros((5, L), np.int32)
  targets = np.zeros((5, L), np.int32)
  for r, n in enumerate(lengths):
    inputs[r, :n] = rng.integers(1, NUM_ITEMS + 1, n)
    targets[r, :n] = rng.integers(1, NUM_ITEMS + 1, n)
    if cloze:  # a few masked positions per row, the mask token in the input
      masked = rng.random(n) < 0.4
      masked[-1] = True
      targets[r, :n] = np.where(masked, inputs[r, :n], 0)
      inputs[r, :n] = np.where(masked, NUM_ITEMS + 1, inputs[r, :n])
  return {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets),
          "weights": jnp.asarray((targets > 0).astype(np.float32))}


def _close(got, want, tol=2e-4):
  want, got = jax.device_get((want, got))
  top = max(float(np.abs(a).max()) for a in jax.tree.leaves(want))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got)):
    scale = max(float(np.abs(a).max()), 1e-3 * top)
    np.testing.assert_allclose(np.asarray(b) / scale, np.asarray(a) / scale, atol=tol,
                               err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("cls,remat", [  # ~25 s each: one by default, the rest with -m slow
    (SASRec, "none"), pytest.param(SASRec, "full", marks=pytest.mark.slow),
    pytest.param(SASRec, "dots", marks=pytest.mark.slow),
    pytest.param(BERT4Rec, "dots", marks=pytest.mark.slow)])
def test_scanned_stack_has_the_unrolled_loss_and_gradients(cls, remat):
  cloze = cls is BERT4Rec
  batch = _batch(cloze)
  unrolled = _model(cls)
  scanned = _model(cls, scan_layers=True, remat=remat)
  params = jax.jit(unrolled.init)(jax.random.PRNGKey(0), batch["inputs"])["params"]
  stacked = layers.stack_block_params(params, BLOCKS)
  make = objectives.cloze_loss if cloze else objectives.causal_loss
  rng = jax.random.PRNGKey(1)
  grad = lambda m: jax.jit(jax.value_and_grad(make(m, LOSS), has_aux=True))
  (want, _), g_want = grad(unrolled)(params, batch, rng)
  (got, _), g_got = grad(scanned)(stacked, batch, rng)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  _close(layers.unstack_block_params(g_got), nn.meta.unbox(g_want))
  # the converted params really are the scanned model's layout
  fresh = jax.jit(scanned.init)(jax.random.PRNGKey(0), batch["inputs"])["params"]
  assert (jax.tree.structure(nn.meta.unbox(fresh)) == jax.tree.structure(stacked))
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(nn.meta.unbox(fresh)),
                                                jax.tree.leaves(stacked)))


def test_remat_on_the_unrolled_stack_keeps_params_and_gradients():
  batch = _batch(False)
  plain, remat = _model(SASRec), _model(SASRec, remat="full")
  params = jax.jit(plain.init)(jax.random.PRNGKey(0), batch["inputs"])["params"]
  fresh = jax.jit(remat.init)(jax.random.PRNGKey(0), batch["inputs"])["params"]
  assert jax.tree.structure(fresh) == jax.tree.structure(params)  # block_0, block_1, ...
  rng = jax.random.PRNGKey(1)
  grad = lambda m: jax.jit(jax.value_and_grad(objectives.causal_loss(m, LOSS), has_aux=True))
  (a, _), ga = grad(plain)(params, batch, rng)
  (b, _), gb = grad(remat)(params, batch, rng)
  np.testing.assert_allclose(b, a, rtol=1e-6)
  _close(gb, ga, tol=1e-5)


def test_stack_and_unstack_are_inverse():
  params = jax.jit(_model(SASRec).init)(jax.random.PRNGKey(0), _batch(False)["inputs"])["params"]
  params = nn.meta.unbox(params)
  stacked = layers.stack_block_params(params, BLOCKS)
  assert "block_0" not in stacked
  kernel = stacked["blocks"]["layers"]["block"]["mlp"]["Dense_0"]["kernel"]
  assert kernel.shape == (BLOCKS, 16, 32)
  back = layers.unstack_block_params(stacked)
  assert jax.tree.structure(back) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)


def _count(jaxpr, name: str) -> int:
  """Equations named `name` in a jaxpr, each sub-jaxpr (a scan body) counted once."""
  total = 0
  for eqn in jaxpr.eqns:
    total += eqn.primitive.name == name
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          total += _count(sub.jaxpr, name)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          total += _count(sub, name)
  return total


def test_scanned_program_does_not_grow_with_depth():
  """The scanned stack traces one block whatever num_blocks; the unrolled one, each."""
  ids = _batch(False)["inputs"]
  sizes = {}
  for scan in (False, True):
    for blocks in (2, 6):
      model = SASRec(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=blocks,
                     num_heads=2, mlp_dim=32, scan_layers=scan)
      params = jax.eval_shape(model.init, jax.random.PRNGKey(0), ids)["params"]
      jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, ids))(params).jaxpr
      sizes[scan, blocks] = _count(jaxpr, "dot_general")
  assert sizes[True, 2] == sizes[True, 6]
  assert sizes[False, 6] > sizes[False, 2]


def test_generation_with_scanned_params_matches_unrolled():
  unrolled, scanned = _model(SASRec), _model(SASRec, scan_layers=True)
  history = _batch(False)["inputs"][:, :7]
  params = jax.jit(unrolled.init)(jax.random.PRNGKey(0), history)["params"]
  stacked = layers.stack_block_params(params, BLOCKS)
  generated = jnp.stack([jnp.arange(4, 9), jnp.arange(5, 10)], axis=1)  # [B, 2] to append

  @functools.partial(jax.jit, static_argnums=0)
  def roll(model, p):
    state, cache = model.apply({"params": p}, history, 3, method=model.prefill)
    states = [state]
    for t in range(generated.shape[1]):
      state, cache = model.apply({"params": p}, generated[:, t], cache,
                                 method=model.decode_step)
      states.append(state)
    recomputed = model.apply({"params": p}, history, generated, 2, 3, method=model.prefix_state)
    return jnp.stack(states), cache, recomputed

  want, _, _ = roll(unrolled, params)
  got, cache, recomputed = roll(scanned, stacked)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # prefill and each step
  np.testing.assert_allclose(recomputed, got[-1], rtol=1e-4, atol=1e-5)  # = no-cache prefix
  for leaf in jax.tree.leaves(cache):  # every cache leaf leads with the batch axis
    assert leaf.shape[0] == history.shape[0]


def test_stacked_params_shard_with_a_replicated_layer_axis():
  model = _model(SASRec, scan_layers=True, remat="dots")
  mesh = parallel.make_mesh((-1, 2), ("data", "model"))  # 8 CPU devices: 4 x 2
  tx = optim.build_optimizer(ml_collections.ConfigDict(dict(
      lr=1e-3, b1=0.9, b2=0.98, weight_decay=0.0, clip_norm=1.0, warmup_steps=1,
      schedule="constant", final_lr_frac=0.1)), total_steps=10)
  init = lambda r: model.init({"params": r}, jnp.zeros((1, L), jnp.int32))["params"]
  state, state_sh = create_train_state(init, tx, seed=0, mesh=mesh)
  kernel_sh = state_sh.params["blocks"]["layers"]["block"]["mlp"]["Dense_0"]["kernel"]
  assert tuple(kernel_sh.spec)[:1] in ((None,), ())  # the layer axis is never split
  table_sh = state_sh.params["item_embedding"]["embedding"]
  assert tuple(table_sh.spec)[0] == "model"  # the rest of the rules still apply
  kernel = state.params["blocks"]["layers"]["block"]["mlp"]["Dense_0"]["kernel"]
  assert kernel.shape == (BLOCKS, 16, 32)
