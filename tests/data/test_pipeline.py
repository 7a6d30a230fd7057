"""Grain training stream: fixed shapes, determinism, resumable state, per-process shards."""

import numpy as np

from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import SequenceDataset, leave_one_out


def tiny_split(num_users=13, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(3, 15, size=num_users)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(1, 30, size=offsets[-1]).astype(np.int32)
  data = SequenceDataset(offsets=offsets, items=items, times=np.arange(offsets[-1]),
                         user_ids=np.arange(num_users), item_ids=np.arange(31))
  return leave_one_out(data)


def take(it, n):
  return [next(it) for _ in range(n)]


def test_causal_batches_are_shifted_right_padded_windows():
  split = tiny_split()
  source = pipeline.TrainSequences(split)
  it = iter(pipeline.train_dataset(source, pipeline.CausalExample(6), global_batch=4, seed=0))
  batch = next(it)
  assert batch["inputs"].shape == batch["targets"].shape == (4, 6)
  for inputs, targets, weights in zip(batch["inputs"], batch["targets"], batch["weights"]):
    n = int(weights.sum())
    assert n >= 1 and (targets[:n] > 0).all() and (targets[n:] == 0).all()
    np.testing.assert_array_equal(inputs[1:n], targets[:n - 1])  # next-item shift
    assert (inputs[n:] == 0).all()


def test_stream_is_deterministic_for_a_seed_and_differs_across_seeds():
  source = pipeline.TrainSequences(tiny_split())
  make = lambda seed: iter(pipeline.train_dataset(
      source, pipeline.CausalExample(6, "random"), global_batch=4, seed=seed))
  a, b, c = take(make(0), 5), take(make(0), 5), take(make(1), 5)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
  assert any(not np.array_equal(x["inputs"], z["inputs"]) for x, z in zip(a, c))


def test_each_epoch_visits_every_sequence_once():
  split = tiny_split(num_users=12)
  source = pipeline.TrainSequences(split)
  n = len(source)
  for epoch in range(3):
    perm = pipeline.epoch_permutation(0, epoch, n)
    assert sorted(perm.tolist()) == list(range(n))
  assert not np.array_equal(pipeline.epoch_permutation(0, 0, n), pipeline.epoch_permutation(0, 1, n))


def test_iterator_state_restores_exact_position():
  source = pipeline.TrainSequences(tiny_split())
  it = iter(pipeline.train_dataset(source, pipeline.CausalExample(6, "random"),
                                   global_batch=4, seed=0))
  take(it, 3)
  state = it.get_state()
  expected = take(it, 2)
  fresh = iter(pipeline.train_dataset(source, pipeline.CausalExample(6, "random"),
                                      global_batch=4, seed=0))
  fresh.set_state(state)
  for x, y in zip(expected, take(fresh, 2)):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])


def test_processes_get_disjoint_halves_of_the_same_stream():
  source = pipeline.TrainSequences(tiny_split())
  make = lambda i, count, batch: iter(pipeline.train_dataset(
      source, pipeline.CausalExample(6), global_batch=batch, seed=0, process_index=i,
      process_count=count))
  whole = next(make(0, 1, 8))["inputs"]
  p0 = next(make(0, 2, 8))["inputs"]
  p1 = next(make(1, 2, 8))["inputs"]
  assert p0.shape == p1.shape == (4, 6)
  np.testing.assert_array_equal(np.concatenate([p0, p1])[np.argsort([0, 2, 4, 6, 1, 3, 5, 7])],
                                whole)


def test_eval_arrays_hold_history_target_and_seen():
  split = tiny_split()
  arrays = pipeline.eval_arrays(split, "test", max_len=5)
  for row, u in enumerate(arrays.users):
    seq = split.data.sequence(int(u))
    assert arrays.targets[row] == seq[-1]
    h = seq[:-1][-5:]
    np.testing.assert_array_equal(arrays.history[row, :h.size], h)
    np.testing.assert_array_equal(arrays.seen[row, :seq.size - 1], seq[:-1])


def test_cover_windows_repeat_long_sequences_by_their_target_count():
  split = tiny_split(num_users=20)
  plain = pipeline.TrainSequences(split)
  cover = pipeline.TrainSequences(split, cover_window=4)
  copies = -(-(plain.lengths - 1) // 4)  # ceil(targets / window)
  assert len(cover) == copies.sum() > len(plain)
  np.testing.assert_array_equal(cover.users, np.repeat(plain.users, copies))
  np.testing.assert_array_equal(cover.lengths, np.repeat(plain.lengths, copies))
  # with random crops, the copies of one long sequence are different windows
  it = iter(pipeline.train_dataset(cover, pipeline.CausalExample(4, "random"),
                                   global_batch=len(cover), seed=0))
  batch = next(it)
  long_user = plain.users[np.argmax(plain.lengths)]
  rows = batch["inputs"][np.flatnonzero(cover.users[
      pipeline.epoch_permutation(0, 0, len(cover))] == long_user)]
  assert len(rows) >= 2 and len({r.tobytes() for r in rows}) >= 2
