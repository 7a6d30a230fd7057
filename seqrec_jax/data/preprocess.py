"""Turns a raw `Interactions` log into a filtered, re-indexed `SequenceDataset`."""

from __future__ import annotations

import dataclasses

import numpy as np

from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.interactions import Interactions

DEDUP_MODES = ("first", "last", "none")


@dataclasses.dataclass(frozen=True)
class PreprocessOptions:
  """Filters applied, in this order, before the log becomes per-user sequences.

  min_rating: keep rows with rating >= min_rating (None: keep all).
  user_core / item_core: iterated k-core; keep users with >= user_core and items with
    >= item_core interactions, repeated until nothing changes (0: off).
  dedup: for repeated (user, item) pairs keep the 'first' or 'last' in time order (file
    order breaks ties), or 'none' to keep every row.
  """

  min_rating: float | None = None
  user_core: int = 0
  item_core: int = 0
  dedup: str = "first"

  def __post_init__(self):
    if self.dedup not in DEDUP_MODES:
      raise ValueError(f"dedup must be one of {DEDUP_MODES}, got {self.dedup!r}")
    if self.user_core < 0 or self.item_core < 0:
      raise ValueError(f"core sizes must be >= 0, got user_core={self.user_core}, "
                       f"item_core={self.item_core}")


def _normalize_ids(ids: np.ndarray) -> np.ndarray:
  """int64 or str ids (object arrays, e.g. from pandas, become one or the other)."""
  if ids.dtype.kind in "iu":
    return ids.astype(np.int64)
  if ids.dtype.kind == "O":
    try:
      return ids.astype(np.int64)
    except (ValueError, TypeError):
      return np.array([("" if v is None else str(v)) for v in ids], dtype=str)
  if ids.dtype.kind == "S":
    return ids.astype(str)
  return ids


def _missing(ids: np.ndarray) -> np.ndarray:
  """[N] bool: empty-string (or NaN) ids."""
  if ids.dtype.kind == "U":
    return np.char.str_len(np.char.strip(ids)) == 0
  if ids.dtype.kind == "f":
    return np.isnan(ids)
  return np.zeros(ids.shape, bool)


def _kcore(users: np.ndarray, items: np.ndarray, user_core: int, item_core: int
           ) -> tuple[np.ndarray, int]:
  """[N] bool rows of the largest sub-log where every user has >= user_core rows and every
  item >= item_core rows (iterated to a fixed point), and the number of passes."""
  keep = np.ones(users.shape, bool)
  passes = 0
  if user_core <= 1 and item_core <= 1:
    return keep, passes
  n_users, n_items = int(users.max(initial=-1)) + 1, int(items.max(initial=-1)) + 1
  while True:
    passes += 1
    u_count = np.bincount(users[keep], minlength=n_users)  # [U]
    i_count = np.bincount(items[keep], minlength=n_items)  # [I]
    ok = keep & (u_count[users] >= user_core) & (i_count[items] >= item_core)
    if ok.sum() == keep.sum():
      return keep, passes
    keep = ok


def build_sequence_dataset(inter: Interactions, opts: PreprocessOptions | None = None
                           ) -> SequenceDataset:
  """Filters `inter` per `opts` and packs it into per-user, time-ordered CSR sequences.

  Users are numbered 0..U-1 in order of sorted raw id (deterministic whatever the file
  order); items 1..I in order of sorted raw id, 0 being padding. Within a user, rows are
  sorted by timestamp with file order breaking ties (a stable sort), which is what keeps
  order-only formats (SASRec, S3-Rec) and same-second ratings in their recorded order.
  The report holds the reader's counts, each filter's count and the final sizes.
  """
  opts = opts or PreprocessOptions()
  if opts.min_rating is not None and inter.ratings is None:
    raise ValueError(f"min_rating={opts.min_rating} is set but {inter.source or 'the source'} "
                     "has no ratings")
  report = dict(inter.report)
  users, items = _normalize_ids(inter.users), _normalize_ids(inter.items)
  times = np.asarray(inter.timestamps, np.int64)
  ratings = inter.ratings
  report["raw_interactions"] = len(inter)

  present = ~(_missing(users) | _missing(items))  # [N]
  report["missing_ids"] = int((~present).sum())
  if not present.all():
    users, items, times = users[present], items[present], times[present]
    ratings = None if ratings is None else ratings[present]
  # Dense codes in sorted raw-id order: user code u, item code i (both 0-based here).
  user_raw, u_code = np.unique(users, return_inverse=True)  # [U0], [N]
  item_raw, i_code = np.unique(items, return_inverse=True)  # [I0], [N]
  u_code, i_code = u_code.astype(np.int64), i_code.astype(np.int64)
  report["raw_users"] = int(user_raw.size)
  report["raw_items"] = int(item_raw.size)

  if opts.min_rating is not None:
    above = ratings >= opts.min_rating  # NaN ratings fail too
    report["below_min_rating"] = int((~above).sum())
    u_code, i_code, times, ratings = u_code[above], i_code[above], times[above], ratings[above]
  else:
    report["below_min_rating"] = 0

  # Chronological per user; equal times keep file order (the explicit last key).
  order = np.lexsort((np.arange(times.size), times, u_code))  # [N]
  u_code, i_code, times = u_code[order], i_code[order], times[order]
  ratings = None if ratings is None else ratings[order]

  # Rows sorted by (user, item), chronological within a pair: runs of equal keys are the
  # repeats of one pair, and a run's first / last row its first / last occurrence.
  pair = u_code * max(item_raw.size, 1) + i_code  # [N] int64 (user, item) key
  by_pair = np.argsort(pair, kind="stable")  # [N]
  p_sorted, t_sorted = pair[by_pair], times[by_pair]
  run_start = np.ones(pair.size, bool)  # [N] first row of its pair's run
  run_start[1:] = p_sorted[1:] != p_sorted[:-1]
  run_end = np.roll(run_start, -1)
  # An exact duplicate repeats the pair, time and rating of the row just before it in the
  # run (equal-time rows are adjacent there, in file order).
  same = ~run_start & (t_sorted == np.roll(t_sorted, 1))
  if ratings is not None:
    r_sorted = np.nan_to_num(ratings[by_pair], nan=-np.inf)  # NaN == NaN here
    same &= r_sorted == np.roll(r_sorted, 1)
  repeats = int((~run_start).sum())
  report["duplicate_rows"] = int(same.sum())
  report["repeated_pairs"] = repeats - int(same.sum())
  report["dedup_dropped"] = 0 if opts.dedup == "none" else repeats
  if opts.dedup != "none":
    chosen = by_pair[run_start if opts.dedup == "first" else run_end]
    mask = np.zeros(pair.size, bool)  # [N]
    mask[chosen] = True
    u_code, i_code, times = u_code[mask], i_code[mask], times[mask]

  core, passes = _kcore(u_code, i_code, opts.user_core, opts.item_core)
  report["kcore_dropped"] = int((~core).sum())
  report["kcore_passes"] = passes
  u_code, i_code, times = u_code[core], i_code[core], times[core]

  # Final ids: users/items left after filtering, still in sorted raw-id order.
  kept_u, u_dense = np.unique(u_code, return_inverse=True)  # [U], [N]
  kept_i, i_dense = np.unique(i_code, return_inverse=True)  # [I], [N]
  n_users = kept_u.size
  offsets = np.zeros(n_users + 1, np.int64)  # [U+1]
  offsets[1:] = np.cumsum(np.bincount(u_dense, minlength=n_users))
  placeholder = np.array(["" if item_raw.dtype.kind == "U" else 0], dtype=item_raw.dtype)
  item_ids = np.concatenate([placeholder, item_raw[kept_i]])  # [I+1]

  report["users_dropped"] = report["raw_users"] - int(n_users)
  report["items_dropped"] = report["raw_items"] - int(kept_i.size)
  report["users"] = int(n_users)
  report["items"] = int(kept_i.size)
  report["interactions"] = int(u_code.size)
  return SequenceDataset(
      offsets=offsets,
      items=(i_dense + 1).astype(np.int32),  # [N] int32, 1..I
      times=times.astype(np.int64),  # [N] int64
      user_ids=user_raw[kept_u],  # [U]
      item_ids=item_ids,
      report=report)
