"""Length-grouped batching: whole batches per epoch, similar lengths, exact cuts."""

import numpy as np
import pytest

from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out


def varied_split(num_users=70, seed=0, max_items=120):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, max_items, size=num_users)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(1, 50, size=offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(51))
  return leave_one_out(data)


@pytest.mark.parametrize("n,max_len,expected", [(1, 200, 8), (8, 200, 8), (9, 200, 16),
                                                (16, 200, 16), (17, 200, 32), (65, 200, 96),
                                                (199, 200, 200), (40, 30, 30), (3, 5, 5)])
def test_bucket_length(n, max_len, expected):
  assert pipeline.bucket_length(n, max_len) == expected


def test_each_epoch_is_whole_batches_of_distinct_sequences_in_similar_lengths():
  source = pipeline.TrainSequences(varied_split())
  example = pipeline.CausalExample(100)
  lengths = example.window_lengths(source.lengths)
  stream = pipeline.LengthGroupedEpochs(source, 0, lengths, batch_size=8, group_batches=4,
                                        max_len=100)
  assert stream.per_epoch == (len(source) // 8) * 8
  spread_grouped, spread_random = [], []
  for epoch in range(2):
    order, widths = stream.epoch_order(epoch)
    assert order.size == stream.per_epoch and np.unique(order).size == order.size
    for row, width in zip(order.reshape(-1, 8), widths):
      assert width == pipeline.bucket_length(lengths[row].max(), 100)
      spread_grouped.append(np.ptp(lengths[row]))
    perm = pipeline.epoch_permutation(0, epoch, len(source))[: stream.per_epoch]
    spread_random += [np.ptp(lengths[row]) for row in perm.reshape(-1, 8)]
  assert np.mean(spread_grouped) < 0.5 * np.mean(spread_random)
  a, b = stream.epoch_order(0)[0], stream.epoch_order(1)[0]
  assert not np.array_equal(a, b)


@pytest.mark.parametrize("example", [pipeline.CausalExample(100, "random"),
                                     pipeline.ClozeExample(100, mask_id=51)])
def test_cut_batches_lose_no_real_position(example):
  """Each cut batch row is the full-width example of its sequence, cut where nothing but
  padding follows: compared with the uncut example rebuilt from the same sequence and
  the same documented randomness (seed, global index)."""
  source = pipeline.TrainSequences(varied_split())
  seed, batch_size, group_batches = 0, 8, 4
  it = iter(pipeline.train_dataset(source, example, global_batch=batch_size, seed=seed,
                                   group_batches=group_batches))
  # The same epochs, only to know which sequence each row holds.
  stream = pipeline.LengthGroupedEpochs(source, seed, example.window_lengths(source.lengths),
                                        batch_size, group_batches, example.max_len)
  per_epoch = stream.per_epoch // batch_size
  widths, real_kept, real_total = set(), 0, 0
  for epoch in range(3):
    order = stream.epoch_order(epoch)[0].reshape(-1, batch_size)
    for b in range(per_epoch):
      batch = next(it)
      width = batch["inputs"].shape[1]
      widths.add(width)
      assert batch["targets"].shape == batch["weights"].shape == (batch_size, width)
      for r, seq_index in enumerate(order[b]):
        i = epoch * stream.per_epoch + b * batch_size + r  # the element's global index
        full = example(source[int(seq_index)], np.random.default_rng([seed, i]))
        for key in example.window_keys:
          assert not full[key][width:].any(), (
              f"epoch {epoch} batch {b} row {r}: {key} has real positions past the cut "
              f"at {width} (window {int((full['inputs'] > 0).sum())})")
          np.testing.assert_array_equal(batch[key][r], full[key][:width])
        real_total += int((full["inputs"] > 0).sum())
      real_kept += int((batch["inputs"] > 0).sum())
      real = (batch["inputs"] > 0).sum(1)  # [B] the window of each row (masks included)
      assert width == pipeline.bucket_length(real.max(), 100)  # cut to the longest window
  assert real_kept == real_total
  assert len(widths) > 1 and max(widths) <= 100


def test_per_process_slices_share_the_global_batch_width():
  source = pipeline.TrainSequences(varied_split())
  make = lambda p: iter(pipeline.train_dataset(source, pipeline.CausalExample(100), global_batch=8,
                                               seed=3, process_index=p, process_count=2,
                                               group_batches=2))
  whole = iter(pipeline.train_dataset(source, pipeline.CausalExample(100), global_batch=8, seed=3,
                                      group_batches=2))
  p0, p1 = make(0), make(1)
  for _ in range(10):
    a, b, w = next(p0), next(p1), next(whole)
    assert a["inputs"].shape == b["inputs"].shape == (4, w["inputs"].shape[1])
    np.testing.assert_array_equal(np.sort(np.concatenate([a["inputs"], b["inputs"]]), axis=0),
                                  np.sort(w["inputs"], axis=0))


def test_grouped_stream_is_deterministic_and_resumable():
  source = pipeline.TrainSequences(varied_split())
  make = lambda: iter(pipeline.train_dataset(source, pipeline.CausalExample(100, "random"),
                                             global_batch=8, seed=0, group_batches=4))
  it = make()
  for _ in range(5):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(4)]
  again = make()
  again.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(again)["inputs"], e["inputs"])


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_loss_on_a_cut_batch_equals_the_full_width_loss(name):
  import jax
  from seqrec_jax import config as config_lib, models
  from seqrec_jax.train import objectives

  cfg = config_lib.base_config()
  cfg.model.name, cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = name, 40, 16, 32
  cfg.model.dropout = cfg.model.emb_dropout = 0.0
  model = models.build_model(cfg.model, 50)
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 13, size=6)  # every row fits in 16 of the 40 positions
  inputs = np.zeros((6, 40), np.int32)
  targets = np.zeros((6, 40), np.int32)
  for r, n in enumerate(lengths):
    inputs[r, :n] = rng.integers(1, 50, n)
    targets[r, :n] = rng.integers(1, 50, n)
  full = {"inputs": inputs, "targets": targets, "weights": (targets > 0).astype(np.float32)}
  cut = {k: v[:, :16] for k, v in full.items()}
  params = model.init({"params": jax.random.key(0)}, inputs)["params"]
  loss_fn = objectives.causal_loss(model, cfg.loss)
  a, _ = loss_fn(params, full, jax.random.key(1))
  b, _ = loss_fn(params, cut, jax.random.key(1))
  np.testing.assert_allclose(a, b, rtol=1e-5)


def test_grouped_batches_carry_a_fixed_loss_normaliser_equal_to_the_mean_target_count():
  source = pipeline.TrainSequences(varied_split())
  example = pipeline.CausalExample(100)
  it = iter(pipeline.train_dataset(source, example, global_batch=8, seed=0, group_batches=4))
  per_epoch = len(source) // 8
  norms, counts = [], []
  for _ in range(4 * per_epoch):
    batch = next(it)
    norms.append(batch["loss_norm"].sum())
    counts.append(batch["weights"].sum())
  assert np.ptp(norms) == 0  # the same for every batch, short or long
  assert np.ptp(counts) > 0.5 * np.mean(counts)  # while the batches' own counts vary a lot
  np.testing.assert_allclose(np.mean(counts), norms[0], rtol=0.15)  # = the mean, in expectation


@pytest.mark.parametrize("example,lengths", [
    (pipeline.ClozeExample(30, mask_id=51, mask_prob=0.3), np.array([3, 10, 40])),
    (pipeline.Seq2SeqExample(30, future_k=5, bos_id=51), np.array([2, 4, 12, 40]))])
def test_expected_targets_match_the_sampled_examples(example, lengths):
  rng = np.random.default_rng(0)
  for n, expected in zip(lengths, example.expected_targets(lengths)):
    seq = np.arange(1, n + 1, dtype=np.int32)
    got = np.mean([example(seq, rng)["weights"].sum() for _ in range(3000)])
    assert got == pytest.approx(expected, rel=0.08, abs=0.1)
