"""Sampled losses and samplers: exactness with every item as a negative, the logQ
correction, in-batch masking of the positive, gBCE's calibration, and that no loss
builds [positions, catalogue] logits."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqrec_jax import losses, samplers
from seqrec_jax.config import base_config


def _problem(b=3, l=4, d=8, v=12, seed=0):
  rng = np.random.default_rng(seed)
  hidden = jnp.asarray(rng.normal(size=(b, l, d)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(v, d)) * 0.5, jnp.float32)
  targets = jnp.asarray(rng.integers(1, v, (b, l)), jnp.int32)
  weights = jnp.asarray(rng.random((b, l)) > 0.2, jnp.float32)
  return hidden, table, targets, weights


def _cfg(**kw):
  cfg = base_config().loss
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.update(kw)
  return cfg


@pytest.mark.parametrize("share", ["batch", "position"])
def test_sampled_softmax_with_every_item_equals_full_ce(share):
  hidden, table, targets, weights = _problem()
  cfg = _cfg(name="sampled_softmax", sampler="all", share_negatives=share)
  key = jax.random.PRNGKey(0)
  f_sampled = lambda h, t: losses.next_item_loss(h, t, targets, weights, key, cfg)
  f_full = lambda h, t: losses.full_softmax_ce(h, t, targets, weights)
  v1, g1 = jax.value_and_grad(f_sampled, argnums=(0, 1))(hidden, table)
  v2, g2 = jax.value_and_grad(f_full, argnums=(0, 1))(hidden, table)
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_logq_corrected_estimate_matches_the_softmax_gradient_on_average():
  """Sampled softmax is self-normalised importance sampling: with the logQ correction
  the mean gradient over many draws converges to the full-softmax gradient as the
  negatives grow (bias O(1/K): measured 0.38, 0.095, 0.015, 0.003 relative error at
  K = 16, 64, 256, 1024; benchmarks/logq_bias.py); without it the estimate stays pulled
  toward the proposal's popular items (0.52 down to 0.34)."""
  v, d = 9, 4
  rng = np.random.default_rng(1)
  hidden = jnp.asarray(rng.normal(size=(1, 1, d)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)
  targets, weights = jnp.array([[3]]), jnp.ones((1, 1))
  counts = np.array([0, 50, 20, 10, 5, 5, 3, 2, 1], np.float64)
  stats = losses.LossStats(log_freq=jnp.asarray(np.log(np.where(counts > 0, counts, 1e-30)
                                                       / counts.sum()), jnp.float32))
  full = jax.grad(lambda h: losses.full_softmax_ce(h, table, targets, weights))(hidden)

  def rel_err(k, logq, draws=4000):
    def one(key):
      return jax.grad(lambda h: losses.sampled_softmax(
          h, table, targets, weights, key, k, sampler="popularity", shared=True,
          stats=stats, logq=logq))(hidden)
    g = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(0), draws)).mean(0)
    return float(jnp.linalg.norm(g - full) / jnp.linalg.norm(full))

  err_256, err_1024 = rel_err(256, True), rel_err(1024, True)
  assert err_1024 < 0.01, err_1024
  assert err_256 > 2 * err_1024  # the remaining gap is the O(1/K) bias, shrinking with K
  assert rel_err(1024, False) > 0.2  # without the correction it does not converge


def test_in_batch_negatives_never_count_the_positive():
  hidden, table, _, _ = _problem()
  targets = jnp.full((3, 4), 5, jnp.int32)  # every candidate of the batch is the positive
  weights = jnp.ones((3, 4))
  stats = losses.LossStats(log_freq=jnp.log(jnp.full((12,), 1 / 11)).at[0].set(-jnp.inf))
  loss = losses.sampled_softmax(hidden, table, targets, weights, jax.random.PRNGKey(0), 6,
                                sampler="in_batch", shared=True, stats=stats)
  np.testing.assert_allclose(loss, 0.0, atol=1e-6)  # only the positive is left
  mixed = losses.sampled_softmax(hidden, table, targets, weights, jax.random.PRNGKey(0), 6,
                                 sampler="mixed", shared=True, stats=stats)
  assert float(mixed) > 0.0  # the uniform half still brings real negatives


def test_gbce_with_t_zero_is_bce():
  hidden, table, targets, weights = _problem()
  key = jax.random.PRNGKey(3)
  bce = losses.next_item_loss(hidden, table, targets, weights, key,
                              _cfg(name="bce", num_negatives=4))
  gbce0 = losses.next_item_loss(hidden, table, targets, weights, key,
                                _cfg(name="gbce", num_negatives=4, gbce_t=0.0))
  gbce1 = losses.next_item_loss(hidden, table, targets, weights, key,
                                _cfg(name="gbce", num_negatives=4, gbce_t=1.0))
  assert losses.gbce_beta(4, 11, 0.0) == pytest.approx(1.0)
  assert losses.gbce_beta(4, 11, 1.0) == pytest.approx(4 / 10)
  np.testing.assert_allclose(gbce0, bce, rtol=1e-6)
  assert float(gbce1) < float(bce)  # beta < 1 weighs the positive term less


def test_popularity_sampler_follows_count_to_the_alpha():
  counts = np.array([0, 40, 10, 0, 30, 20], np.float64)
  log_freq = jnp.asarray(np.log(np.maximum(counts, 1e-30) / counts.sum()), jnp.float32)
  for alpha in (1.0, 0.5):
    ctx = samplers.SampleContext(vocab=6, log_freq=log_freq, alpha=alpha)
    negs = samplers.SAMPLERS.get("popularity")(jax.random.PRNGKey(0), ctx, 200_000, True)
    freq = np.bincount(np.asarray(negs.ids), minlength=6) / 200_000
    want = np.where(counts > 0, counts ** alpha, 0.0)
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.005)
    assert freq[0] == 0 and freq[3] == 0  # padding and never-seen items are never drawn


def test_sampled_losses_never_build_catalogue_sized_logits():
  v = 50_000
  hidden, _, targets, weights = _problem(b=2, l=3, d=2, v=v)
  table = jnp.zeros((v, 2))  # its gradient [V, 2] is smaller than [positions, V]
  n = 6
  for name, sampler, share in [("sampled_softmax", "uniform", "batch"),
                               ("sampled_softmax", "uniform", "position"),
                               ("bce", "uniform", "position"), ("gbce", "uniform", "batch")]:
    cfg = _cfg(name=name, sampler=sampler, share_negatives=share, num_negatives=16)
    jaxpr = jax.make_jaxpr(jax.grad(lambda t: losses.next_item_loss(
        hidden, t, targets, weights, jax.random.PRNGKey(0), cfg)))(table)
    sizes = [int(np.prod(var.aval.shape)) for eqn in jaxpr.jaxpr.eqns for var in eqn.outvars]
    assert max(sizes) < n * v, (name, share, max(sizes))  # the [V, D] table gradient is fine


def test_in_batch_sampler_rejects_per_position_sharing():
  hidden, table, targets, weights = _problem()
  stats = losses.LossStats(log_freq=jnp.zeros(12))
  with pytest.raises(ValueError, match="share_negatives='batch'"):
    losses.sampled_softmax(hidden, table, targets, weights, jax.random.PRNGKey(0), 4,
                           sampler="in_batch", shared=False, stats=stats)


def _drop_rows(table, never):
  """The table without the never_negative rows (the reference: those items are absent)."""
  return table[~np.asarray(never)]


@pytest.mark.parametrize("chunk", [0, 3])
def test_never_negative_items_leave_the_full_softmax(chunk):
  """Cold items (never_negative) are out of the partition function: the loss equals CE
  over a catalogue that lacks them, dense and chunked; an off-by-one against the
  padding row, or a mask applied to the wrong rows, breaks it."""
  hidden, table, targets, weights = _problem(v=12)
  never = np.zeros(12, bool)
  never[[2, 7, 8]] = True
  weights = weights * jnp.asarray(~never[np.asarray(targets)], jnp.float32)  # no cold targets
  got = losses.full_softmax_ce(hidden, table, targets, weights, vocab_chunk=chunk,
                               never_negative=jnp.asarray(never))
  remap = np.cumsum(~never) - 1  # old id -> row in the shrunk table
  small_targets = jnp.asarray(remap[np.asarray(targets)] * np.asarray(weights > 0))
  want = losses.full_softmax_ce(hidden, jnp.asarray(_drop_rows(table, never)),
                                small_targets, weights)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  plain = losses.full_softmax_ce(hidden, table, targets, weights, vocab_chunk=chunk)
  assert float(plain) > float(got)  # the mask did remove terms


@pytest.mark.parametrize("name,share", [("sampled_softmax", "batch"), ("bce", "position"),
                                        ("ce", "batch")])
def test_never_negative_items_get_no_gradient(name, share):
  """A cold item is never pushed down: its table row gets zero gradient from every
  loss (uniform draws do hit it), while other negatives' rows do get one."""
  hidden, table, targets, weights = _problem(v=12)
  never = np.zeros(12, bool)
  never[[3, 9]] = True
  targets = jnp.where(jnp.isin(targets, jnp.array([3, 9])), 1, targets)
  stats = losses.LossStats(never_negative=jnp.asarray(never))
  cfg = _cfg(name=name, sampler="uniform", share_negatives=share, num_negatives=64)
  key = jax.random.PRNGKey(1)
  grad = jax.grad(lambda t: losses.next_item_loss(hidden, t, targets, weights, key, cfg,
                                                  stats=stats))(table)
  row_norm = np.linalg.norm(np.asarray(grad), axis=1)
  assert np.all(row_norm[[3, 9]] == 0.0)
  plain = jax.grad(lambda t: losses.next_item_loss(hidden, t, targets, weights, key, cfg))(table)
  assert np.all(np.linalg.norm(np.asarray(plain), axis=1)[[3, 9]] > 0)  # unmasked: pushed down
