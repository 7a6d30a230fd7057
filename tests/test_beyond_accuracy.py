"""Beyond-accuracy metrics: coverage, popularity, novelty, intra-list diversity, and
the evaluator reporting them next to HR/NDCG/MRR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import evaluation, metrics, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out
from seqrec_jax.models.sasrec import SASRec


def test_intra_list_distance_every_prefix_by_hand():
  feats = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 0]], np.float32)
  top = np.array([[1, 2, 4, 3]])
  ild = np.asarray(metrics.intra_list_distance(jnp.asarray(top), jnp.asarray(feats)))[0]

  def ref(k):
    f = feats[top[0, :k]]
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    d = [1 - f[i] @ f[j] for i in range(k) for j in range(i + 1, k)]
    return np.mean(d) if d else 0.0

  np.testing.assert_allclose(ild, [ref(k) for k in range(1, 5)], atol=1e-6)
  assert ild[1] == pytest.approx(1.0) and ild[2] == pytest.approx((1 + 2 + 1) / 3)


def test_novelty_popularity_coverage():
  counts = np.array([0, 7, 1, 0])  # item 3 never seen in training
  top = np.array([[1, 2], [1, 3]])
  total = 8 + 3
  want = np.mean([-np.log2(8 / total), -np.log2(2 / total), -np.log2(8 / total),
                  -np.log2(1 / total)])
  assert metrics.novelty(top, counts) == pytest.approx(want)
  out = metrics.beyond_accuracy(top, np.array([[0, 0.5], [0, 0.25]]), (1, 2, 5), 3, counts)
  assert out == pytest.approx({"coverage@1": 1 / 3, "popularity@1": 7.0,
                               "novelty@1": -np.log2(8 / total), "coverage@2": 1.0,
                               "diversity@2": 0.375, "popularity@2": 15 / 4,
                               "novelty@2": want})


def test_text_features_diversity():
  feats = metrics.text_features(["Toy Story (1995)", "Toy Story 2 (1999)", "Heat"], dim=256)
  ild = np.asarray(metrics.intra_list_distance(jnp.asarray([[0, 1], [0, 2]]),
                                               jnp.asarray(feats)))
  assert 0 < ild[0, 1] < ild[1, 1] == pytest.approx(1.0)  # shared words: less diverse


def test_evaluator_reports_them_next_to_accuracy():
  rng = np.random.default_rng(0)
  lengths = rng.integers(4, 12, 40)
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  items = rng.integers(1, 31, offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(items.size),
                         user_ids=np.arange(40), item_ids=np.arange(31))
  split = leave_one_out(data)
  model = SASRec(num_items=30, max_len=8, embed_dim=16, num_blocks=1, mlp_dim=32)
  params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8), jnp.int32))["params"]
  mesh = parallel.make_mesh()
  sh = parallel.param_shardings(params, mesh)
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  params = jax.device_put(nn.meta.unbox(params), sh)
  arrays = pipeline.eval_arrays(split, "test", 8)
  plain = evaluation.jit_rank_step(model, 30, sh, mesh)
  full = evaluation.jit_rank_step(model, 30, sh, mesh, top_k=10)
  counts = evaluation.train_item_counts(split)
  assert counts.sum() == sum(split.train_sequence(u).size for u in range(40))
  a = evaluation.evaluate_stage(plain, params, arrays, 16, mesh, (1, 5, 10), num_items=30)
  b = evaluation.evaluate_stage(full, params, arrays, 16, mesh, (1, 5, 10), num_items=30,
                                item_counts=counts)
  assert {k: b[k] for k in a} == a  # accuracy unchanged
  for prefix in ("", "excl/"):
    for name in ("coverage@10", "diversity@10", "popularity@10", "novelty@10", "coverage@1"):
      assert prefix + name in b
  # reference from the full scores
  scores = np.array(model.apply({"params": jax.device_get(params)}, jnp.asarray(arrays.history),
                                method=lambda m, h: m.encode(h) @ m.item_table().T))
  scores[:, 0] = -np.inf
  top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
  assert b["coverage@10"] == pytest.approx(np.unique(top).size / 30)
  assert b["popularity@10"] == pytest.approx(counts[top].mean(), rel=1e-5)
  # the long tail: each bucket's figures are those of its users alone
  target_counts = counts[arrays.targets[:len(arrays)]]
  rows = np.flatnonzero(target_counts <= 5)
  assert b["pop<=5/users"] + b["pop6-20/users"] + b["pop>20/users"] == len(arrays)
  if rows.size:
    _, r = evaluation.evaluate_stage(full, params, arrays, 16, mesh, (10,), num_items=30,
                                     with_ranks=True)
    assert b["pop<=5/hr@10"] == pytest.approx(float(np.mean(r.rank[rows] < 10)))
