"""BERT4Rec's masked-position gather (`task.max_predictions`): the output layer runs on
the P masked positions only, with the loss of the full [B, L] path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from seqrec_jax import config as config_lib
from seqrec_jax.data import packing, pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out
from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.train import objectives

NUM_ITEMS, L = 30, 12
MASK = NUM_ITEMS + 1


def _loss_cfg():
  return ml_collections.ConfigDict(dict(name="ce", vocab_chunk=0, num_negatives=1,
                                        seen_margin=0.0))


def _sequences(n=12, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.integers(1, NUM_ITEMS + 1, int(k)).astype(np.int32)
          for k in rng.integers(2, 20, size=n)]


def _stack(examples):
  return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def test_cap_above_the_masked_count_changes_nothing_but_adds_the_gather_arrays():
  plain = pipeline.ClozeExample(L, MASK, mask_prob=0.3)
  capped = pipeline.ClozeExample(L, MASK, mask_prob=0.3, max_predictions=L)
  for i, seq in enumerate(_sequences()):
    a = plain(seq, np.random.default_rng([0, i]))
    b = capped(seq, np.random.default_rng([0, i]))
    for key in ("inputs", "targets", "weights"):
      np.testing.assert_array_equal(b[key], a[key])
    pos = np.flatnonzero(a["weights"])
    k = pos.size
    np.testing.assert_array_equal(b["masked_positions"][:k], pos)
    np.testing.assert_array_equal(b["masked_targets"][:k], a["targets"][pos])
    np.testing.assert_array_equal(b["masked_weights"], np.arange(L) < k)
    assert not b["masked_targets"][k:].any() and not b["masked_positions"][k:].any()


def test_cap_keeps_p_masks_and_gives_the_others_their_items_back():
  p = 2
  plain = pipeline.ClozeExample(L, MASK, mask_prob=0.6)
  capped = pipeline.ClozeExample(L, MASK, mask_prob=0.6, max_predictions=p)
  over = 0
  for i, seq in enumerate(_sequences(40)):
    a = plain(seq, np.random.default_rng([1, i]))
    b = capped(seq, np.random.default_rng([1, i]))
    original = pipeline.right_pad(seq[-L:], L)
    assert int(b["weights"].sum()) == min(int(a["weights"].sum()), p)
    assert set(np.flatnonzero(b["weights"])) <= set(np.flatnonzero(a["weights"]))
    # a masked input is exactly a scored position; every other input is the item
    np.testing.assert_array_equal(b["inputs"] == MASK, b["weights"] > 0)
    np.testing.assert_array_equal(np.where(b["inputs"] == MASK, b["targets"], b["inputs"]),
                                  original)
    np.testing.assert_array_equal(b["masked_targets"][b["masked_weights"] > 0],
                                  original[b["masked_positions"][b["masked_weights"] > 0]])
    over += a["weights"].sum() > p
  assert over > 5  # the cap was exercised


def _model():
  return BERT4Rec(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=2, num_heads=2,
                  mlp_dim=32, dropout=0.0, emb_dropout=0.0)


def test_gathered_loss_and_gradients_equal_the_full_output_layer():
  example = pipeline.ClozeExample(L, MASK, mask_prob=0.3, max_predictions=L)
  batch = _stack([example(s, np.random.default_rng([2, i])) for i, s in enumerate(_sequences())])
  p = int(batch["masked_weights"].sum(1).max())  # the smallest P that holds every row
  gathered = {**batch, **{k: batch[k][:, :p] for k in
                          ("masked_positions", "masked_targets", "masked_weights")}}
  full = {k: batch[k] for k in ("inputs", "targets", "weights")}
  model = _model()
  params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.asarray(full["inputs"]))["params"]
  loss_fn = objectives.cloze_loss(model, _loss_cfg())
  grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  rng = jax.random.PRNGKey(4)
  (want, aux_want), g_want = grad(params, full, rng)
  (got, aux_got), g_got = grad(params, gathered, rng)
  assert float(aux_got["targets"]) == float(aux_want["targets"])
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_want), jax.tree.leaves(g_got)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_gather_inside_the_model_equals_picking_from_every_state():
  model = _model()
  ids = jnp.array([[3, MASK, 5, 6, MASK, 0, 0, 0, 0, 0, 0, 0], [MASK] * L])
  params = jax.jit(model.init)(jax.random.PRNGKey(0), ids)["params"]
  where = jnp.array([[1, 4, 0], [0, 11, 5]])
  every = model.apply({"params": params}, ids)  # [B, L, D]
  picked = model.apply({"params": params}, ids, gather=where)  # [B, P, D]
  np.testing.assert_allclose(picked, jnp.take_along_axis(every, where[..., None], axis=1),
                             rtol=1e-5, atol=1e-6)


def test_packed_rows_carry_the_gather_arrays_of_the_row():
  rng = np.random.default_rng(0)
  lengths = rng.integers(2, 8, size=30)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  data = SequenceDataset(offsets=offsets, items=rng.integers(1, NUM_ITEMS + 1, offsets[-1]),
                         times=np.arange(offsets[-1]), user_ids=np.arange(30),
                         item_ids=np.arange(NUM_ITEMS + 1))
  source = pipeline.TrainSequences(leave_one_out(data))
  p = 4
  example = pipeline.ClozeExample(L, MASK, mask_prob=0.4, max_predictions=p)
  packed = packing.PackedSequences(source, example.window_lengths(source.lengths), L)
  batch = next(iter(pipeline.train_dataset(packed, example, global_batch=4, seed=0)))
  assert batch["masked_positions"].shape == (4, p)
  for r in range(4):
    pos = np.flatnonzero(batch["weights"][r])
    assert pos.size <= p  # the cap bounds the whole packed row
    np.testing.assert_array_equal(batch["masked_positions"][r, :pos.size], pos)
    np.testing.assert_array_equal(batch["masked_targets"][r, :pos.size],
                                  batch["targets"][r, pos])
    np.testing.assert_array_equal(batch["inputs"][r] == MASK, batch["weights"][r] > 0)


def test_config_max_predictions_is_for_the_cloze_task():
  cfg = default.get_config("smoke")
  cfg.task.max_predictions = 5
  with pytest.raises(ValueError, match="max_predictions"):
    config_lib.validate(cfg)  # sasrec: causal task
  cfg.model.name = "bert4rec"
  config_lib.validate(cfg)
  cfg.task.max_predictions = -1
  with pytest.raises(ValueError, match="max_predictions"):
    config_lib.validate(cfg)
