"""Ranking metrics against a plain-numpy reference (ties and exclusions included)."""

import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import metrics


def reference_rank(scores, target, num_items, seen=()):
  """Pessimistic rank: rankable items other than the target with score >= target's."""
  excluded = set(int(s) for s in seen if s > 0) - {target}
  count = 0
  for i in range(1, num_items + 1):
    if i == target or i in excluded:
      continue
    if scores[i] >= scores[target]:
      count += 1
  return count


def reference_metrics(rank, k):
  hit = rank < k
  return {"hr": float(hit), "ndcg": 1.0 / np.log2(rank + 2) if hit else 0.0,
          "mrr": 1.0 / (rank + 1) if hit else 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_and_metrics_match_numpy_reference_with_ties(seed):
  rng = np.random.default_rng(seed)
  batch, num_items, extra = 16, 40, 2  # extra columns = special tokens, never ranked
  # Integer-valued scores give many exact ties.
  scores = rng.integers(0, 6, size=(batch, num_items + 1 + extra)).astype(np.float32)
  targets = rng.integers(1, num_items + 1, size=batch)
  seen = rng.integers(0, num_items + 1, size=(batch, 7))
  seen[0, 0] = targets[0]  # the target itself in the history: must not be excluded
  got = np.asarray(metrics.target_ranks(jnp.asarray(scores), jnp.asarray(targets), num_items))
  got_excl = np.asarray(metrics.target_ranks(jnp.asarray(scores), jnp.asarray(targets),
                                             num_items, seen=jnp.asarray(seen)))
  want = [reference_rank(scores[b], targets[b], num_items) for b in range(batch)]
  want_excl = [reference_rank(scores[b], targets[b], num_items, seen[b]) for b in range(batch)]
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got_excl, want_excl)
  assert (got_excl <= got).all()
  per_user = metrics.metrics_from_ranks(jnp.asarray(got), (1, 5, 10))
  for k in (1, 5, 10):
    for name in ("hr", "ndcg", "mrr"):
      ref = [reference_metrics(r, k)[name] for r in want]
      np.testing.assert_allclose(np.asarray(per_user[f"{name}@{k}"]), ref, rtol=1e-6)


def test_constant_scores_get_worst_rank():
  scores = jnp.zeros((2, 11))
  ranks = metrics.target_ranks(scores, jnp.array([3, 10]), num_items=10)
  np.testing.assert_array_equal(np.asarray(ranks), [9, 9])


def test_padding_column_is_never_ranked():
  scores = jnp.array([[100.0, 1.0, 2.0, 3.0]])  # column 0 = padding, highest score
  assert int(metrics.target_ranks(scores, jnp.array([3]), num_items=3)[0]) == 0


def test_coverage_and_popularity():
  top = np.array([[1, 2], [2, 3]])
  assert metrics.coverage_at_k(top, num_items=6) == pytest.approx(0.5)
  counts = np.array([0, 10, 20, 30, 0, 0, 0])
  assert metrics.mean_popularity(top, counts) == pytest.approx((10 + 20 + 20 + 30) / 4)


def test_popularity_buckets_split_users_by_target_popularity():
  from seqrec_jax.metrics import bucket_names, popularity_buckets
  assert bucket_names((5, 20)) == ["<=5", "6-20", ">20"]
  ranks = np.array([0, 3, 50, 0])  # users' target ranks
  counts = np.array([2, 5, 6, 100])  # their targets' training interactions
  out = popularity_buckets(ranks, counts, (5, 20), ks=(10,))
  assert out["pop<=5/users"] == 2 and out["pop6-20/users"] == 1 and out["pop>20/users"] == 1
  assert out["pop<=5/hr@10"] == 1.0 and out["pop6-20/hr@10"] == 0.0
  np.testing.assert_allclose(out["pop<=5/ndcg@10"], (1.0 + 1 / np.log2(5)) / 2)
  assert "pop>20/hr@10" in out
  empty = popularity_buckets(ranks[:1], counts[:1], (5, 20), ks=(10,), prefix="excl/")
  assert empty["excl/pop>20/users"] == 0 and "excl/pop>20/hr@10" not in empty
