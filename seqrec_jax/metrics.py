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


def bucket_names(edges: Sequence[int]) -> list[str]:
  """Names of the popularity buckets cut at `edges` (e.g. (5, 20) -> "<=5", "6-20",
  ">20"): training interactions of the target item."""
  edges = sorted(int(e) for e in edges)
  names, lo = [], 0
  for e in edges:
    names.append(f"<={e}" if lo == 0 else f"{lo}-{e}")
    lo = e + 1
  return names + [f">{edges[-1]}"] if edges else ["all"]


def popularity_bucket_index(target_counts: np.ndarray, edges: Sequence[int]) -> np.ndarray:
  """[U] index into `bucket_names(edges)` of each target's training count (a count equal
  to an edge falls in the bucket that edge closes: 5 -> "<=5", 6 -> "6-20")."""
  return np.searchsorted(np.asarray(sorted(edges)), target_counts, side="left")


def popularity_buckets(ranks: np.ndarray, target_counts: np.ndarray, edges: Sequence[int],
                       ks: Sequence[int] = DEFAULT_KS, prefix: str = "") -> dict[str, float]:
  """The long tail: HR / NDCG / MRR of the users whose target falls in each popularity
  bucket (`target_counts` [U]: the target item's training interactions), plus each
  bucket's user count: {"<prefix>pop<=5/ndcg@10": ..., "<prefix>pop<=5/users": n}. A
  bucket without users has no metrics, only its count 0."""
  out: dict[str, float] = {}
  bins = popularity_bucket_index(target_counts, edges)
  for b, name in enumerate(bucket_names(edges)):
    sel = bins == b
    out[f"{prefix}pop{name}/users"] = int(sel.sum())
    if sel.any():
      out.update({f"{prefix}pop{name}/{k}": v for k, v in summarize(ranks[sel], ks).items()})
  return out


def coverage_at_k(top_items: np.ndarray, num_items: int) -> float:
  """Share of the catalogue that appears in anyone's top-k. top_items: [U, k]."""
  return float(np.unique(top_items[top_items > 0]).size) / float(num_items)


def mean_popularity(top_items: np.ndarray, item_counts: np.ndarray) -> float:
  """Mean training count of recommended items. top_items: [U, k]; item_counts: [V]."""
  return float(np.mean(item_counts[top_items]))


# ---- Beyond accuracy (top-K lists) ----------------------------------------------------------

def novelty(top_items: np.ndarray, item_counts: np.ndarray) -> float:
  """Mean self-information of recommended items, -log2 p(i), with p(i) the item's share
  of the training interactions, add-one smoothed over the catalogue: p(i) = (c_i + 1) /
  (sum c + num_items), so a never-seen item is finite. top_items: [U, k] ids >= 1;
  item_counts: [V] (column 0, padding, ignored)."""
  counts = np.asarray(item_counts, np.float64)
  total = counts[1:].sum() + (counts.size - 1)
  info = -np.log2((counts + 1.0) / total)
  return float(np.mean(info[top_items]))


def intra_list_distance(top_items: jax.Array, features: jax.Array) -> jax.Array:
  """Intra-list diversity of every prefix of each list: the mean pairwise cosine
  distance 1 - cos(f_i, f_j) between the first k items, for k = 1..K (k = 1: 0).

  top_items: [B, K] ids; features: [V, F] a row per item (the model's item embeddings,
  or `text_features` of the titles). -> [B, K] float32, column k-1 for the top-k list.
  """
  f = jnp.take(features.astype(jnp.float32), top_items, axis=0)  # [B, K, F]
  f = f / jnp.maximum(jnp.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
  dist = 1.0 - jnp.einsum("bif,bjf->bij", f, f)  # [B, K, K]
  k = top_items.shape[1]
  below = jnp.tril(jnp.ones((k, k), jnp.bool_), -1)  # i > j: each pair once
  per_new = jnp.sum(jnp.where(below[None], dist, 0.0), axis=2)  # [B, K]: item i vs earlier
  sizes = jnp.arange(1, k + 1, dtype=jnp.float32)
  pairs = jnp.maximum(sizes * (sizes - 1) / 2, 1.0)
  return jnp.cumsum(per_new, axis=1) / pairs[None]


def text_features(texts, dim: int = 1024) -> np.ndarray:
  """[V, dim] float32 binary bags of words (lower-case alphanumeric runs, hashed with
  crc32 into `dim` buckets) of one text per item: `intra_list_distance` over them is the
  cosine distance between the items' word sets (text diversity)."""
  import re  # pylint: disable=import-outside-toplevel
  import zlib  # pylint: disable=import-outside-toplevel
  out = np.zeros((len(texts), dim), np.float32)
  for row, text in enumerate(texts):
    for word in set(re.findall(r"[a-z0-9]+", str(text or "").lower())):
      out[row, zlib.crc32(word.encode()) % dim] = 1.0
  return out


def beyond_accuracy(top_items: np.ndarray, ild: np.ndarray | None, ks: Sequence[int],
                    num_items: int, item_counts: np.ndarray | None = None,
                    prefix: str = "") -> dict[str, float]:
  """coverage@k, diversity@k (k >= 2, from `ild` [U, K] of `intra_list_distance`), and
  with `item_counts` popularity@k (mean training count) and novelty@k, for every k in ks
  up to K (coverage only with num_items > 0). top_items: [U, K] best first."""
  out: dict[str, float] = {}
  if top_items.shape[0] == 0:
    return out
  for k in ks:
    if k > top_items.shape[1]:
      continue
    top = top_items[:, :k]
    if num_items > 0:
      out[f"{prefix}coverage@{k}"] = coverage_at_k(top, num_items)
    if ild is not None and k >= 2:
      out[f"{prefix}diversity@{k}"] = float(np.mean(ild[:, k - 1]))
    if item_counts is not None:
      out[f"{prefix}popularity@{k}"] = mean_popularity(top, item_counts)
      out[f"{prefix}novelty@{k}"] = novelty(top, item_counts)
  return out


# ---- Multi-step (next k items) --------------------------------------------------------------
# The true future is [B, k] item ids in order (0 = padding, ignored); repeated items
# count once, at their first position.

def top_k_items(scores: jax.Array, k: int, num_items: int,
                seen: jax.Array | None = None) -> jax.Array:
  """[B, K] the K best-scoring items in 1..num_items (optionally excluding `seen` [B, S])."""
  scores = scores.astype(jnp.float32)
  col = jnp.arange(scores.shape[1])[None, :]
  scores = jnp.where((col >= 1) & (col <= num_items), scores, -jnp.inf)
  if seen is not None:
    rows = jnp.arange(scores.shape[0])[:, None]
    scores = scores.at[rows, seen].set(-jnp.inf)  # (0 = padding is already excluded)
  return jax.lax.top_k(scores, k)[1].astype(jnp.int32)


def first_occurrence(ids: jax.Array) -> jax.Array:
  """[B, N] bool: ids[b, i] is real and not equal to any ids[b, j < i]."""
  n = ids.shape[1]
  same = ids[:, :, None] == ids[:, None, :]  # [B, N, N]
  earlier = jnp.tril(jnp.ones((n, n), jnp.bool_), -1)[None]  # j < i
  return (ids != 0) & ~jnp.any(same & earlier, axis=2)


def _discounts(n: int) -> jax.Array:
  return 1.0 / jnp.log2(jnp.arange(n, dtype=jnp.float32) + 2.0)  # [n]


def multistep_set_metrics(ranked: jax.Array, future: jax.Array) -> dict[str, jax.Array]:
  """Set-based: how many of the next k true items a top-K list contains.

  ranked: [B, K] item ids, best first; future: [B, k]. Per user:
    recall = |top-K ∩ future| / |future|,
    ndcg = Σ_r hit_r / log2(r + 2) over the K ranks, divided by its best possible value
    (min(K, |future|) hits at the top).
  """
  fut_first = first_occurrence(future)  # [B, k]
  rank_first = first_occurrence(ranked)  # [B, K]
  in_future = jnp.any((ranked[:, :, None] == future[:, None, :]) & fut_first[:, None, :], axis=2)
  hits = (in_future & rank_first).astype(jnp.float32)  # [B, K]
  relevant = jnp.sum(fut_first, axis=1).astype(jnp.float32)  # [B]
  disc = _discounts(ranked.shape[1])  # [K]
  ideal = jnp.cumsum(disc)[jnp.clip(relevant.astype(jnp.int32), 1, ranked.shape[1]) - 1]
  return {"recall": jnp.sum(hits, axis=1) / jnp.maximum(relevant, 1.0),
          "ndcg": jnp.where(relevant > 0, jnp.sum(hits * disc, axis=1) / ideal, 0.0)}


def sequence_metrics(generated: jax.Array, future: jax.Array) -> dict[str, jax.Array]:
  """Order-aware metrics of a generated sequence against the true future.

  generated: [B, T]; future: [B, k]. Per user:
    ndcg: graded NDCG, the true item at future position j has relevance k - j (the
      next item matters most): DCG = Σ_t rel(generated_t) / log2(t + 2) (an item is
      credited once), divided by the DCG of the true order. Generating the right items
      in the right order scores 1; the right items in another order scores less.
    exact: the share of steps t < min(T, k) with generated_t == future_t.
  """
  k = future.shape[1]
  fut_first = first_occurrence(future)  # [B, k]
  rel_true = jnp.where(fut_first, (k - jnp.arange(k))[None].astype(jnp.float32), 0.0)  # [B, k]
  match = (generated[:, :, None] == future[:, None, :]) & fut_first[:, None, :]  # [B, T, k]
  rel = jnp.sum(jnp.where(match, rel_true[:, None, :], 0.0), axis=2)  # [B, T]
  rel = rel * first_occurrence(generated)
  steps = generated.shape[1]
  dcg = jnp.sum(rel * _discounts(steps), axis=1)
  best = -jnp.sort(-rel_true, axis=1)  # [B, k] descending
  n = min(steps, k)
  idcg = jnp.sum(best[:, :n] * _discounts(n), axis=1)
  same = (generated[:, :n] == future[:, :n]) & (future[:, :n] != 0)
  real = jnp.maximum(jnp.sum(future[:, :n] != 0, axis=1), 1)
  return {"ndcg": jnp.where(idcg > 0, dcg / jnp.maximum(idcg, 1e-9), 0.0),
          "exact": jnp.sum(same, axis=1) / real}
