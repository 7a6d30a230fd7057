"""Filtering, ordering and re-indexing of `build_sequence_dataset`."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.interactions import Interactions
from seqrec_jax.data.preprocess import PreprocessOptions, build_sequence_dataset


def log(rows, ratings=None) -> Interactions:
  """rows: (user, item, time) in file order."""
  users, items, times = zip(*rows)
  return Interactions(users=np.array(users), items=np.array(items),
                      timestamps=np.array(times, np.int64),
                      ratings=None if ratings is None else np.array(ratings, np.float32),
                      report={"lines": len(rows)})


def raw_sequences(ds) -> dict:
  return {ds.user_ids[u].item(): ds.item_ids[ds.sequence(u)].tolist()
          for u in range(ds.num_users)}


def test_chronological_with_stable_ties():
  # User 7's items 30, 10, 20 share time 5 and must keep file order; 40 is earlier.
  inter = log([(7, 30, 5), (3, 1, 1), (7, 10, 5), (7, 40, 2), (7, 20, 5)])
  ds = build_sequence_dataset(inter)
  assert raw_sequences(ds) == {3: [1], 7: [40, 30, 10, 20]}
  np.testing.assert_array_equal(ds.times[ds.offsets[1]:], [2, 5, 5, 5])


def test_remapping():
  inter = log([(20, 500, 1), (10, 300, 2), (20, 100, 3), (10, 500, 4)])
  ds = build_sequence_dataset(inter)
  np.testing.assert_array_equal(ds.user_ids, [10, 20])  # users by sorted raw id
  np.testing.assert_array_equal(ds.item_ids, [0, 100, 300, 500])  # 0 = placeholder
  assert ds.items.dtype == np.int32 and ds.items.min() >= 1
  assert ds.items.max() == ds.num_items == 3
  np.testing.assert_array_equal(ds.offsets, [0, 2, 4])
  assert raw_sequences(ds) == {10: [300, 500], 20: [500, 100]}


def test_str_ids():
  inter = log([("bob", "x", 2), ("amy", "y", 1), ("bob", "y", 1)])
  ds = build_sequence_dataset(inter)
  assert ds.item_ids.tolist() == ["", "x", "y"]
  assert raw_sequences(ds) == {"amy": ["y"], "bob": ["y", "x"]}


def test_missing_ids_dropped():
  inter = log([("a", "x", 1), ("", "y", 2), ("b", "", 3)])
  ds = build_sequence_dataset(inter)
  assert ds.report["missing_ids"] == 2 and ds.report["interactions"] == 1


@pytest.mark.parametrize("mode,expect,dropped", [
    ("first", [5, 6], 3),
    ("last", [6, 5], 3),
    ("none", [5, 5, 6, 5, 5], 0),
])
def test_dedup(mode, expect, dropped):
  # (1, 5) at time 1 twice (an exact duplicate row), then again at times 3 and 4.
  inter = log([(1, 5, 1), (1, 5, 1), (1, 6, 2), (1, 5, 3), (1, 5, 4)])
  ds = build_sequence_dataset(inter, PreprocessOptions(dedup=mode))
  assert raw_sequences(ds) == {1: expect}
  assert ds.report["duplicate_rows"] == 1 and ds.report["repeated_pairs"] == 2
  assert ds.report["dedup_dropped"] == dropped


def test_bad_dedup_mode():
  with pytest.raises(ValueError, match="dedup"):
    PreprocessOptions(dedup="all")


def test_kcore_iterates_to_fixed_point():
  # 2-core with a cascade: each drop pushes the next user or item below 2, one per pass:
  # (2,9) item 9 rare -> (2,7) user 2 short -> (3,7) item 7 rare -> (3,8) user 3 short
  # -> (5,8) item 8 rare -> (5,1) user 5 short. Users 1 and 4 form the stable core.
  rows = [(1, 1, 1), (1, 2, 2), (4, 1, 1), (4, 2, 2),
          (2, 7, 1), (2, 9, 2), (3, 7, 1), (3, 8, 2), (5, 8, 1), (5, 1, 2)]
  ds = build_sequence_dataset(log(rows), PreprocessOptions(user_core=2, item_core=2))
  assert raw_sequences(ds) == {1: [1, 2], 4: [1, 2]}
  assert ds.report["kcore_passes"] == 7  # 6 dropping passes + 1 confirming the fixed point
  assert ds.report["kcore_dropped"] == 6
  assert ds.report["users_dropped"] == 3 and ds.report["items_dropped"] == 3


def test_kcore_single_pass_not_enough():
  # After one pass of user/item filtering a violation remains; the fixed point has none.
  rows = [(1, 1, 1), (1, 2, 2), (2, 1, 1), (2, 2, 2), (3, 1, 1), (3, 3, 2), (4, 3, 1)]
  ds = build_sequence_dataset(log(rows), PreprocessOptions(user_core=2, item_core=2))
  assert raw_sequences(ds) == {1: [1, 2], 2: [1, 2]}


def test_rating_threshold():
  inter = log([(1, 1, 1), (1, 2, 2), (2, 1, 3)], ratings=[5, 2, 4])
  ds = build_sequence_dataset(inter, PreprocessOptions(min_rating=4))
  assert raw_sequences(ds) == {1: [1], 2: [1]}
  assert ds.report["below_min_rating"] == 1
  assert ds.report["lines"] == 3  # the reader's counts are kept


def test_rating_threshold_without_ratings():
  with pytest.raises(ValueError, match="no ratings"):
    build_sequence_dataset(log([(1, 1, 1)]), PreprocessOptions(min_rating=4))


def test_leave_one_out_on_result(tmp_path):
  rows = [(1, i, i) for i in range(10, 15)] + [(2, 10, 1), (2, 11, 2)]
  ds = build_sequence_dataset(log(rows))
  split = leave_one_out(ds)
  np.testing.assert_array_equal(split.eval_users, [0])  # user 2 has only 2 items
  history, target = split.history_and_target(0, "test")
  assert ds.item_ids[target] == 14 and ds.item_ids[history].tolist() == [10, 11, 12, 13]
  assert ds.item_ids[split.history_and_target(0, "valid")[1]] == 13
  # The report survives the .npz round trip (it must stay JSON).
  ds.save(str(tmp_path / "d.npz"))
  back = type(ds).load(str(tmp_path / "d.npz"))
  assert back.report == ds.report
  np.testing.assert_array_equal(back.item_ids, ds.item_ids)


def test_speed_half_million_rows():
  import time
  rng = np.random.default_rng(0)
  n = 500_000
  inter = Interactions(users=rng.integers(0, 5000, n), items=rng.integers(0, 4000, n),
                       timestamps=rng.integers(0, 10**9, n), ratings=None)
  start = time.perf_counter()
  build_sequence_dataset(inter, PreprocessOptions(user_core=5, item_core=5))
  assert time.perf_counter() - start < 5.0  # ~0.5 s on one core; generous for CI noise
