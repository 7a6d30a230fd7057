"""Multi-step metrics against plain-numpy references."""

import numpy as np
import jax.numpy as jnp

from seqrec_jax import metrics


def _ref_set(ranked, future):
  truth = [i for j, i in enumerate(future) if i and i not in future[:j]]
  hits, dcg, seen = 0, 0.0, set()
  for r, item in enumerate(ranked):
    if item in truth and item not in seen:
      hits += 1
      dcg += 1 / np.log2(r + 2)
    seen.add(item)
  idcg = sum(1 / np.log2(r + 2) for r in range(min(len(ranked), len(truth))))
  return hits / max(len(truth), 1), (dcg / idcg if truth else 0.0)


def _ref_sequence(generated, future):
  k = len(future)
  rel = {}
  for j, item in enumerate(future):
    if item and item not in rel:
      rel[item] = k - j
  dcg, seen = 0.0, set()
  for t, item in enumerate(generated):
    if item not in seen:
      dcg += rel.get(item, 0) / np.log2(t + 2)
    seen.add(item)
  best = sorted(rel.values(), reverse=True)[:len(generated)]
  idcg = sum(r / np.log2(t + 2) for t, r in enumerate(best))
  n = min(len(generated), k)
  real = max(sum(1 for i in future[:n] if i), 1)
  exact = sum(1 for t in range(n) if future[t] and generated[t] == future[t]) / real
  return (dcg / idcg if idcg else 0.0), exact


def test_against_numpy_reference_on_random_lists():
  rng = np.random.default_rng(0)
  b = 300
  ranked = np.stack([rng.permutation(30)[:10] + 1 for _ in range(b)])  # distinct, like top-K
  generated = rng.integers(1, 12, size=(b, 5))  # may repeat
  future = rng.integers(1, 12, size=(b, 5))  # may repeat
  future[::7, 3:] = 0  # some users with a shorter future
  future[0] = 0  # and one with none
  sets = metrics.multistep_set_metrics(jnp.asarray(ranked), jnp.asarray(future))
  seqs = metrics.sequence_metrics(jnp.asarray(generated), jnp.asarray(future))
  for i in range(b):
    recall, ndcg = _ref_set(list(ranked[i]), list(future[i]))
    assert np.isclose(sets["recall"][i], recall) and np.isclose(sets["ndcg"][i], ndcg, atol=1e-6)
    sndcg, exact = _ref_sequence(list(generated[i]), list(future[i]))
    assert np.isclose(seqs["ndcg"][i], sndcg, atol=1e-6), i
    assert np.isclose(seqs["exact"][i], exact)


def test_extremes():
  future = jnp.array([[5, 6, 7, 8, 9]])
  perfect = metrics.sequence_metrics(future, future)
  assert float(perfect["ndcg"][0]) == 1.0 and float(perfect["exact"][0]) == 1.0
  reversed_ = metrics.sequence_metrics(future[:, ::-1], future)
  assert 0.5 < float(reversed_["ndcg"][0]) < 1.0  # right items, wrong order
  assert np.isclose(float(reversed_["exact"][0]), 0.2)  # only the middle one
  miss = metrics.multistep_set_metrics(jnp.array([[1, 2, 3]]), future)
  assert float(miss["recall"][0]) == 0.0 and float(miss["ndcg"][0]) == 0.0
  top = metrics.multistep_set_metrics(jnp.array([[5, 6, 7, 8, 9, 1, 2]]), future)
  assert float(top["recall"][0]) == 1.0 and np.isclose(float(top["ndcg"][0]), 1.0)


def test_top_k_items_excludes_padding_specials_and_seen():
  scores = jnp.array([[9.0, 1.0, 5.0, 3.0, 8.0, 7.0]])  # columns 0..5; num_items=4
  np.testing.assert_array_equal(metrics.top_k_items(scores, 2, num_items=4), [[4, 2]])
  np.testing.assert_array_equal(
      metrics.top_k_items(scores, 2, num_items=4, seen=jnp.array([[4, 0]])), [[2, 3]])
