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


def _seen_reference(hidden, table, inputs, targets, weights, margin):
  """Plain numpy: per position, logits over items 1..V-1 with +margin on the distinct
  items of inputs[:t+1] other than the target; weighted mean NLL."""
  hidden, table = np.asarray(hidden, np.float64), np.asarray(table, np.float64)
  total, count = 0.0, 0.0
  for b in range(inputs.shape[0]):
    for t in range(inputs.shape[1]):
      if weights[b, t] == 0:
        continue
      logits = table[1:] @ hidden[b, t]  # [V-1]
      for item in set(int(i) for i in inputs[b, :t + 1]) - {0, int(targets[b, t])}:
        logits[item - 1] += margin
      lse = np.log(np.sum(np.exp(logits - logits.max()))) + logits.max()
      total += weights[b, t] * (lse - logits[targets[b, t] - 1])
      count += weights[b, t]
  return total / count


def test_seen_margin_matches_a_plain_reference_with_repeats():
  hidden, table, _, _ = _inputs(seed=2, b=3, l=6, v=9)
  # right-padded histories with a repeated item (3) and a target that was seen before (5)
  inputs = np.array([[3, 5, 3, 2, 0, 0], [1, 2, 4, 6, 7, 8], [5, 1, 1, 0, 0, 0]])
  targets = np.array([[5, 3, 2, 4, 0, 0], [2, 4, 6, 7, 8, 1], [1, 1, 5, 0, 0, 0]])
  weights = (targets > 0).astype(np.float32)
  for margin in (0.0, 1.5):
    got = losses.full_softmax_ce(hidden, table, jnp.asarray(targets), jnp.asarray(weights),
                                 seen=jnp.asarray(inputs), seen_margin=margin)
    ref = _seen_reference(hidden, table, inputs, targets, weights, margin)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
  plain = losses.full_softmax_ce(hidden, table, jnp.asarray(targets), jnp.asarray(weights))
  with_margin = losses.full_softmax_ce(hidden, table, jnp.asarray(targets),
                                       jnp.asarray(weights), seen=jnp.asarray(inputs),
                                       seen_margin=1.5)
  assert with_margin > plain  # seen negatives only ever add to the softmax


def test_seen_margin_chunked_equals_dense_gradient():
  hidden, table, _, _ = _inputs(seed=3, b=2, l=5, v=17)
  inputs = jnp.array([[4, 9, 4, 2, 0], [1, 16, 7, 3, 5]])
  targets = jnp.array([[9, 4, 2, 11, 0], [16, 7, 3, 5, 8]])
  weights = (targets > 0).astype(jnp.float32)
  f = lambda chunk: lambda h, t: losses.full_softmax_ce(h, t, targets, weights, chunk,
                                                       seen=inputs, seen_margin=2.0)
  v1, g1 = jax.value_and_grad(f(0), argnums=(0, 1))(hidden, table)
  v2, g2 = jax.value_and_grad(f(5), argnums=(0, 1))(hidden, table)
  np.testing.assert_allclose(v1, v2, rtol=1e-5)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_prefix_seen_mask_counts_each_seen_item_once_and_never_the_target():
  inputs = jnp.array([[3, 5, 3, 0]])
  targets = jnp.array([[5, 3, 7, 0]])
  mask = np.asarray(losses.prefix_seen_mask(inputs, targets))[0]  # [t, s]
  np.testing.assert_array_equal(mask, [[1, 0, 0, 0],   # t=0: {3}
                                       [0, 1, 0, 0],   # t=1: {3, 5} minus target 3
                                       [1, 1, 0, 0],   # t=2: {3, 5}, the repeat once
                                       [1, 1, 0, 0]])  # padding key never seen
