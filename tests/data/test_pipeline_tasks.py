"""Cloze and seq2seq examples, the leave_last_k split and multi-step evaluation arrays."""

import numpy as np
import pytest

from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out

MASK = 101


def _cloze(**kw):
  return pipeline.ClozeExample(max_len=kw.pop("max_len", 50), mask_id=MASK, **kw)


def test_cloze_mask_rate_matches_mask_prob_and_never_masks_padding():
  rng = np.random.default_rng(0)
  example = _cloze(mask_prob=0.3, mask_last_prob=0.0)
  masked = real = 0
  for _ in range(400):
    seq = rng.integers(1, 100, size=int(rng.integers(30, 50)))
    out = example(seq, rng)
    n = seq.size
    assert out["inputs"].shape == out["targets"].shape == out["weights"].shape == (50,)
    # Padding stays padding, with no target and no weight.
    assert (out["inputs"][n:] == 0).all() and (out["targets"][n:] == 0).all()
    assert (out["weights"][n:] == 0).all()
    is_masked = out["inputs"][:n] == MASK
    np.testing.assert_array_equal(is_masked, out["weights"][:n] == 1)
    np.testing.assert_array_equal(out["targets"][:n][is_masked], seq[is_masked])
    np.testing.assert_array_equal(out["inputs"][:n][~is_masked], seq[~is_masked])
    masked += int(is_masked.sum())
    real += n
  rate = masked / real
  assert abs(rate - 0.3) < 0.015, rate  # ~16k Bernoulli draws: sd ~0.004


def test_cloze_masks_final_item_with_mask_last_prob_and_at_least_one_item():
  rng = np.random.default_rng(1)
  seq = np.arange(1, 8)
  always = _cloze(max_len=10, mask_prob=0.01, mask_last_prob=1.0)
  for _ in range(50):
    out = always(seq, rng)
    assert out["inputs"][6] == MASK and out["targets"][6] == 7
  sometimes = _cloze(max_len=10, mask_prob=0.01, mask_last_prob=0.5)
  last = [sometimes(seq, rng)["inputs"][6] == MASK for _ in range(400)]
  assert 0.4 < np.mean(last) < 0.65
  rare = _cloze(max_len=10, mask_prob=0.01, mask_last_prob=0.0)
  assert all(rare(seq, rng)["weights"].sum() >= 1 for _ in range(100))


def test_cloze_window_keeps_latest_items():
  out = _cloze(max_len=5, mask_prob=0.5)(np.arange(1, 21), np.random.default_rng(0))
  kept = np.where(out["weights"] > 0, out["targets"], out["inputs"])
  np.testing.assert_array_equal(kept, np.arange(16, 21))


def test_seq2seq_example_cuts_history_and_future():
  rng = np.random.default_rng(0)
  example = pipeline.Seq2SeqExample(max_len=6, future_k=3, bos_id=MASK)
  seq = np.arange(1, 11)
  cuts = set()
  for _ in range(300):
    out = example(seq, rng)
    hist = out["history"][out["history"] > 0]
    cut = hist[-1]  # items are 1..10 in order, so the last history item is the cut
    cuts.add(int(cut))
    np.testing.assert_array_equal(hist, np.arange(max(1, cut - 5), cut + 1))
    future = np.arange(cut + 1, min(cut + 3, 10) + 1)
    np.testing.assert_array_equal(out["targets"][:future.size], future)
    assert (out["targets"][future.size:] == 0).all()
    np.testing.assert_array_equal(out["weights"], out["targets"] > 0)
    assert out["dec_inputs"][0] == MASK
    np.testing.assert_array_equal(out["dec_inputs"][1:future.size], future[:-1])
  assert cuts == set(range(1, 10))  # every cut point with >= 1 history and future item


def _data(lengths):
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  items = np.concatenate([np.arange(1, n + 1) for n in lengths]).astype(np.int32)
  return SequenceDataset(offsets=offsets, items=items, times=np.arange(items.size),
                         user_ids=np.arange(len(lengths)),
                         item_ids=np.arange(max(lengths) + 1))


def test_leave_last_k_sets_the_future_aside_and_default_is_unchanged():
  data = _data([12, 7, 4])
  plain, held = leave_one_out(data), leave_one_out(data, leave_last_k=5)
  assert plain.ends is None
  np.testing.assert_array_equal(plain.eval_users, [0, 1, 2])
  h, t = plain.history_and_target(0, "test")
  assert t == 12 and h[-1] == 11
  np.testing.assert_array_equal(held.eval_users, [0])  # user 1 has 2 items left, user 2 none
  np.testing.assert_array_equal(held.train_sequence(0), np.arange(1, 6))
  assert held.history_and_target(0, "valid") == (pytest.approx(np.arange(1, 6)), 6)
  h, t = held.history_and_target(0, "test")
  assert t == 7 and h.size == 6
  np.testing.assert_array_equal(held.train_sequence(1), [1, 2])
  assert held.train_sequence(2).size == 0
  arrays = pipeline.future_arrays(data, k=5, max_len=4)
  np.testing.assert_array_equal(arrays.users, [0])  # needs >= 3 history items
  np.testing.assert_array_equal(arrays.future[0], np.arange(8, 13))
  np.testing.assert_array_equal(arrays.history[0], [4, 5, 6, 7])
  np.testing.assert_array_equal(arrays.seen[0], np.arange(1, 8))


def test_every_cut_source_gives_each_history_future_pair_once():
  import numpy as np  # pylint: disable=import-outside-toplevel
  from seqrec_jax.data import pipeline  # pylint: disable=import-outside-toplevel
  from seqrec_jax.data.dataset import SequenceDataset, leave_one_out  # pylint: disable=import-outside-toplevel
  seqs = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11]]
  data = SequenceDataset(offsets=np.array([0, 6, 11]), items=np.array(sum(seqs, []), np.int32),
                         times=np.arange(11), user_ids=np.arange(2), item_ids=np.arange(12))
  split = leave_one_out(data)  # training parts: [1, 2, 3, 4] and [7, 8, 9]
  source = pipeline.CutSequences(split)
  assert len(source) == 3 + 2
  example = pipeline.Seq2SeqExample(max_len=4, future_k=2, bos_id=12)
  got = [example(source[i], np.random.default_rng(0)) for i in range(len(source))]
  histories = [g["history"][g["history"] > 0].tolist() for g in got]
  futures = [g["targets"][g["targets"] > 0].tolist() for g in got]
  assert histories == [[1], [1, 2], [1, 2, 3], [7], [7, 8]]
  assert futures == [[2, 3], [3, 4], [4], [8, 9], [9]]
  assert source.lengths.tolist() == [2, 3, 4, 2, 3]  # window_lengths = the history length
  assert got[1]["dec_inputs"].tolist() == [12, 3]
