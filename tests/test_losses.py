"""Losses against direct formulas; chunked softmax equals the dense one."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqrec_jax import losses


def _inputs(seed=0, b=3, l=5, d=8, v=23):
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
  hidden = jax.random.normal(k1, (b, l, d))
  table = jax.random.normal(k2, (v, d))
  targets = jax.random.randint(k3, (b, l), 1, v)
  weights = jnp.ones((b, l)).at[0, :2].set(0.0)
  targets = jnp.where(weights > 0, targets, 0)
  return hidden, table, targets, weights


def test_full_softmax_ce_matches_optax_over_items_only():
  hidden, table, targets, weights = _inputs()
  logits = jnp.einsum("bld,vd->blv", hidden, table[1:])
  ref = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(targets - 1, 0))
  ref = jnp.sum(ref * weights) / jnp.sum(weights)
  got = losses.full_softmax_ce(hidden, table, targets, weights)
  np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_chunked_ce_equals_dense_value_and_gradient():
  hidden, table, targets, weights = _inputs(seed=1)
  dense = lambda h, t: losses.full_softmax_ce(h, t, targets, weights, vocab_chunk=0)
  chunked = lambda h, t: losses.full_softmax_ce(h, t, targets, weights, vocab_chunk=5)
  v1, g1 = jax.value_and_grad(dense, argnums=(0, 1))(hidden, table)
  v2, g2 = jax.value_and_grad(chunked, argnums=(0, 1))(hidden, table)
  np.testing.assert_allclose(v1, v2, rtol=1e-5)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_sampled_bce_matches_formula():
  hidden, table, targets, weights = _inputs(seed=2)
  rng = jax.random.PRNGKey(7)
  got = losses.sampled_bce(hidden, table, targets, weights, rng, num_negatives=3)
  h = hidden.reshape(-1, hidden.shape[-1])
  t = targets.reshape(-1)
  w = weights.reshape(-1)
  neg = jax.random.randint(rng, (h.shape[0], 3), 1, table.shape[0])
  sig = lambda x: 1 / (1 + np.exp(-x))
  total = 0.0
  for n in range(h.shape[0]):
    pos = float(h[n] @ table[t[n]])
    term = -np.log(sig(pos))
    for j in range(3):
      if int(neg[n, j]) != int(t[n]):
        term -= np.log(1 - sig(float(h[n] @ table[neg[n, j]])))
    total += term * float(w[n])
  np.testing.assert_allclose(got, total / float(w.sum()), rtol=1e-4)


def test_a_fixed_denominator_replaces_the_target_count():
  rng = np.random.default_rng(1)
  hidden = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
  targets = jnp.asarray(rng.integers(1, 7, size=(2, 3)), jnp.int32)
  weights = jnp.asarray([[1, 1, 0], [1, 0, 0]], jnp.float32)
  own = losses.full_softmax_ce(hidden, table, targets, weights)
  fixed = losses.full_softmax_ce(hidden, table, targets, weights, denominator=jnp.float32(6.0))
  np.testing.assert_allclose(fixed * 6.0, own * 3.0, rtol=1e-6)
  key = jax.random.key(0)
  bce = losses.sampled_bce(hidden, table, targets, weights, key)
  bce_fixed = losses.sampled_bce(hidden, table, targets, weights, key, denominator=jnp.float32(6.0))
  np.testing.assert_allclose(bce_fixed * 6.0, bce * 3.0, rtol=1e-6)
