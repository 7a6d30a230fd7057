"""Negative samplers for sampled losses, registered by name (config `loss.sampler`).

A sampler draws candidate negatives for N target positions and says how often each
candidate is expected to be drawn, which the logQ correction of sampled softmax needs:

  `sampler(rng, ctx: SampleContext, num: int, shared: bool) -> Negatives`
    ids [K] (shared by every position) or [N, K] (one set per position), int32 in
    1..V-1, and `log_count` of the same shape: log of the expected number of times
    that item appears among the K draws (log(K q(j)) for K i.i.d. draws from q).

Every sampler draws from the items 1..V-1 of the table (row 0 is padding). Add one by
writing a function with `@SAMPLERS.register("name")`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqrec_jax.data.dataset import train_item_counts
from seqrec_jax.registry import Registry

SAMPLERS: Registry = Registry("sampler")


@dataclasses.dataclass(frozen=True)
class SampleContext:
  """What a sampler may use: the catalogue size, the training item frequencies, and
  the batch's own targets (for in-batch negatives)."""

  vocab: int  # table rows V (items 1..V-1)
  log_freq: Any = None  # [V] float32 log training frequency (-inf: never a target), or None
  targets: Any = None  # [N] the batch's target ids (flattened positions)
  weights: Any = None  # [N] 1 where the position has a target
  alpha: float = 1.0  # popularity sampler: q ∝ count^alpha


@dataclasses.dataclass(frozen=True)
class Negatives:
  ids: jax.Array  # [K] or [N, K] int32
  log_count: jax.Array  # same shape: log expected draws of that item among the K


def _shape(ctx: SampleContext, num: int, shared: bool) -> tuple[int, ...]:
  return (num,) if shared else (ctx.targets.shape[0], num)


@SAMPLERS.register("uniform")
def uniform(rng: jax.Array, ctx: SampleContext, num: int, shared: bool) -> Negatives:
  """Items uniformly from 1..V-1 (with replacement)."""
  ids = jax.random.randint(rng, _shape(ctx, num, shared), 1, ctx.vocab)
  return Negatives(ids, jnp.full(ids.shape, np.log(num / (ctx.vocab - 1)), jnp.float32))


def _popularity_log_probs(ctx: SampleContext) -> jax.Array:
  """[V] log q(j) ∝ alpha * log count(j) over items 1..V-1 (count 0 -> never drawn)."""
  if ctx.log_freq is None:
    raise ValueError("loss.sampler needs the training item frequencies (SampleContext.log_freq)")
  logits = ctx.alpha * jnp.asarray(ctx.log_freq, jnp.float32)
  logits = logits.at[0].set(-jnp.inf)
  return jax.nn.log_softmax(logits)


def _draw(rng: jax.Array, log_probs: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Inverse-CDF draws from exp(log_probs) [V]: O(n log V), never a [n, V] array."""
  cdf = jnp.cumsum(jnp.exp(log_probs))
  u = jax.random.uniform(rng, shape, maxval=cdf[-1])
  return jnp.clip(jnp.searchsorted(cdf, u, side="right"), 1, log_probs.shape[0] - 1)


@SAMPLERS.register("popularity", needs_frequencies=True)
def popularity(rng: jax.Array, ctx: SampleContext, num: int, shared: bool) -> Negatives:
  """Items with probability ∝ training count^alpha (`loss.pop_alpha`)."""
  log_q = _popularity_log_probs(ctx)
  ids = _draw(rng, log_q, _shape(ctx, num, shared)).astype(jnp.int32)
  return Negatives(ids, np.log(num) + log_q[ids])


@SAMPLERS.register("in_batch", needs_frequencies=True)
def in_batch(rng: jax.Array, ctx: SampleContext, num: int, shared: bool) -> Negatives:
  """The batch's own targets: `num` target positions drawn uniformly from the batch's
  real targets, shared by every position. A target is drawn with probability ≈ its
  training frequency, which is the q of the logQ correction."""
  if not shared:
    raise ValueError("loss.sampler='in_batch' shares its negatives across the batch: "
                     "use loss.share_negatives='batch'")
  w = ctx.weights.astype(jnp.float32)
  logits = jnp.where(w > 0, 0.0, -jnp.inf)  # uniform over real target positions
  pos = jax.random.categorical(rng, logits, shape=(num,))
  ids = ctx.targets[pos].astype(jnp.int32)
  if ctx.log_freq is None:
    raise ValueError("loss.sampler='in_batch' needs the training item frequencies")
  return Negatives(ids, np.log(num) + jnp.asarray(ctx.log_freq, jnp.float32)[ids])


@SAMPLERS.register("mixed", needs_frequencies=True)
def mixed(rng: jax.Array, ctx: SampleContext, num: int, shared: bool) -> Negatives:
  """Mixed negative sampling (Yang et al., 2020): half in-batch, half uniform; each
  candidate's expected count is that of the mixture."""
  if not shared:
    raise ValueError("loss.sampler='mixed' shares its negatives across the batch: "
                     "use loss.share_negatives='batch'")
  k_batch = max(num // 2, 1)
  k_uni = max(num - k_batch, 1)
  r1, r2 = jax.random.split(rng)
  a = in_batch(r1, ctx, k_batch, True).ids
  b = jax.random.randint(r2, (k_uni,), 1, ctx.vocab)
  ids = jnp.concatenate([a, b]).astype(jnp.int32)
  freq = jnp.exp(jnp.asarray(ctx.log_freq, jnp.float32))[ids]
  return Negatives(ids, jnp.log(k_batch * freq + k_uni / (ctx.vocab - 1)))


@SAMPLERS.register("all")
def all_items(rng: jax.Array, ctx: SampleContext, num: int, shared: bool) -> Negatives:
  """Every item 1..V-1 exactly once (no sampling; `num` is ignored): sampled softmax
  then equals the full softmax. For tests and small catalogues."""
  del rng, num
  ids = jnp.arange(1, ctx.vocab, dtype=jnp.int32)
  if not shared:
    ids = jnp.broadcast_to(ids, (ctx.targets.shape[0], ids.size))
  return Negatives(ids, jnp.zeros(ids.shape, jnp.float32))


def item_log_frequencies(split) -> np.ndarray:
  """[num_items + 1] log of each item's share of the training targets (pad: -inf),
  from the training part of every sequence (never validation or test)."""
  counts = train_item_counts(split).astype(np.float64)
  counts[0] = 0.0
  with np.errstate(divide="ignore"):
    return np.log(counts / max(counts.sum(), 1.0)).astype(np.float32)
