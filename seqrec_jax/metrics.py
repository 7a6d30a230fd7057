"""Ranking metrics from full-catalogue scores, computed on device.

Ranks are 0-based and pessimistic on ties: an item scoring exactly the target's score
counts as ranked above it, so a model that outputs constant scores gets no credit.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_KS = (1, 5, 10, 20, 50)


def target_ranks(scores: jax.Array, targets: jax.Array, num_items: int,
                 seen: jax.Array | None = None) -> jax.Array:
  """Rank of each target among items 1..num_items.

  Args:
    scores: [B, V] scores, column i for item i (column 0 = padding; V >= num_items+1).
    targets: [B] target item ids in 1..num_items.
    num_items: columns beyond it (special tokens) are never ranked.
    seen: optional [B, S] item ids to exclude from the ranking (0 = padding); the
      target itself is never excluded.
  Returns:
    [B] int32: the number of rankable items scoring >= the target's score.
  """
  scores = scores.astype(jnp.float32)
  batch, vocab = scores.shape
  col = jnp.arange(vocab)[None, :]  # [1, V]
  rankable = (col >= 1) & (col <= num_items)  # [1, V]
  if seen is not None:
    seen_mask = jnp.zeros((batch, vocab), jnp.bool_)
    seen_mask = seen_mask.at[jnp.arange(batch)[:, None], seen].set(True)
    rankable = rankable & ~seen_mask
  rankable = rankable & (col != targets[:, None])  # [B, V]
  target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)  # [B, 1]
  return jnp.sum(rankable & (scores >= target_score), axis=1).astype(jnp.int32)


def metrics_from_ranks(ranks: jax.Array, ks: Sequence[int] = DEFAULT_KS) -> dict[str, jax.Array]:
  """Per-example HR@k, NDCG@k, MRR@k (leave-one-out: one relevant item)."""
  ranks = ranks.astype(jnp.float32)
  out = {}
  for k in ks:
    hit = ranks < k
    out[f"hr@{k}"] = hit.astype(jnp.float32)
    out[f"ndcg@{k}"] = jnp.where(hit, 1.0 / jnp.log2(ranks + 2.0), 0.0)
    out[f"mrr@{k}"] = jnp.where(hit, 1.0 / (ranks + 1.0), 0.0)
  return out


def ndcg_at_k(ranks: jax.Array, k: int) -> jax.Array:
  return jnp.mean(metrics_from_ranks(ranks, (k,))[f"ndcg@{k}"])


def hr_at_k(ranks: jax.Array, k: int) -> jax.Array:
  return jnp.mean(metrics_from_ranks(ranks, (k,))[f"hr@{k}"])


def summarize(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
  """Mean of every metric over users (host side, from gathered ranks)."""
  per_user = metrics_from_ranks(jnp.asarray(ranks), ks)
  return {name: float(np.mean(np.asarray(v))) for name, v in per_user.items()}


def coverage_at_k(top_items: np.ndarray, num_items: int) -> float:
  """Share of the catalogue that appears in anyone's top-k. top_items: [U, k]."""
  return float(np.unique(top_items[top_items > 0]).size) / float(num_items)


def mean_popularity(top_items: np.ndarray, item_counts: np.ndarray) -> float:
  """Mean training count of recommended items. top_items: [U, k]; item_counts: [V]."""
  return float(np.mean(item_counts[top_items]))
