"""`SequenceDataset`: per-user, time-ordered item sequences in CSR form, and splits."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np


@dataclasses.dataclass
class SequenceDataset:
  """All users' histories, concatenated.

  User u's sequence is `items[offsets[u]:offsets[u+1]]`, oldest first. Item ids are
  dense in 1..num_items; 0 is padding. `item_ids[i]` is the raw id of dense item i
  (`item_ids[0]` is a placeholder), `user_ids[u]` the raw id of user u.
  """

  offsets: np.ndarray  # [U+1] int64
  items: np.ndarray  # [N] int32
  times: np.ndarray  # [N] int64
  user_ids: np.ndarray  # [U] raw ids
  item_ids: np.ndarray  # [num_items + 1] raw ids
  report: dict = dataclasses.field(default_factory=dict)

  @property
  def num_users(self) -> int:
    return int(self.offsets.shape[0] - 1)

  @property
  def num_items(self) -> int:
    return int(self.item_ids.shape[0] - 1)

  @property
  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def sequence(self, u: int) -> np.ndarray:
    return self.items[self.offsets[u]:self.offsets[u + 1]]

  def save(self, path: str) -> None:
    """Writes an `.npz` (atomically: a temp file, then rename)."""
    tmp = f"{path}.tmp.npz"
    np.savez(
        tmp, offsets=self.offsets, items=self.items, times=self.times,
        user_ids=self.user_ids, item_ids=self.item_ids,
        report=np.array(json.dumps(self.report)))
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "SequenceDataset":
    with np.load(path, allow_pickle=False) as z:
      return cls(offsets=z["offsets"], items=z["items"], times=z["times"],
                 user_ids=z["user_ids"], item_ids=z["item_ids"],
                 report=json.loads(str(z["report"])))


@dataclasses.dataclass(frozen=True)
class LeaveOneOut:
  """Leave-one-out split: per user the last item is test, the one before validation.

  Training sees `seq[:-2]`; validation ranks `seq[-2]` from history `seq[:-2]`; test
  ranks `seq[-1]` from history `seq[:-1]`. Users with fewer than 3 items train on all
  they have and are not evaluated.

  With `ends` (see `leave_one_out(..., leave_last_k)`), "sequence" above means
  `items[offsets[u]:ends[u]]`: the items after `ends[u]` are never trained on,
  validated or tested here (they are the future of multi-step evaluation).
  """

  data: SequenceDataset
  train_end: np.ndarray  # [U] exclusive end (absolute index into data.items) of training part
  eval_users: np.ndarray  # [E] users with >= 3 items
  ends: np.ndarray | None = None  # [U] exclusive end of the split's part; None: whole sequence
  # [num_items + 1] bool: cold items (data.cold_items_frac), never in a training sequence;
  # kept in evaluation histories and targets. None: no cold items.
  cold: np.ndarray | None = None
  # [N, F] int32 time-feature ids of every interaction (model.time_features,
  # data/time_features.py); the *_tokens methods then give [n, 1 + F]. None: items only.
  features: np.ndarray | None = None

  def _end(self, u: int) -> int:
    return int(self.data.offsets[u + 1] if self.ends is None else self.ends[u])

  def _target_index(self, u: int, stage: str) -> int:
    """Index into data.items of user u's 'valid' or 'test' target."""
    if stage not in ("valid", "test"):
      raise ValueError(f"unknown stage {stage!r}; expected 'valid' or 'test'")
    return self._end(u) - (2 if stage == "valid" else 1)

  def _tokens(self, start: int, end: int, drop_cold: bool, features: bool = True) -> np.ndarray:
    """Items start:end, as [n] ids or (with `features` and the split's time features)
    [n, 1 + F] tokens; `drop_cold`: without the cold items."""
    seq = self.data.items[start:end]
    keep = None if not drop_cold or self.cold is None else ~self.cold[seq]
    if features and self.features is not None:
      seq = np.concatenate([seq[:, None], self.features[start:end]], axis=1)
    return seq if keep is None else seq[keep]

  def train_sequence(self, u: int) -> np.ndarray:
    return self._tokens(int(self.data.offsets[u]), int(self.train_end[u]), True, False)

  def train_tokens(self, u: int) -> np.ndarray:
    """`train_sequence(u)`, with each item's time features when the split has them."""
    return self._tokens(int(self.data.offsets[u]), int(self.train_end[u]), True)

  def history_tokens(self, u: int, stage: str) -> np.ndarray:
    """The history of `history_and_target(u, stage)`, with time features when the split
    has them ([n] or [n, 1 + F])."""
    return self._tokens(int(self.data.offsets[u]), self._target_index(u, stage), False)

  def train_lengths(self) -> np.ndarray:
    """[U] items in each user's training sequence (cold items left out)."""
    lengths = self.train_end - self.data.offsets[:-1]
    if self.cold is None:
      return lengths
    in_train = _training_positions(self)
    user_of = np.repeat(np.arange(lengths.size), np.diff(self.data.offsets))
    return np.bincount(user_of[in_train], minlength=lengths.size).astype(np.int64)

  def history_and_target(self, u: int, stage: str) -> tuple[np.ndarray, int]:
    """(history, target) of user u for stage 'valid' or 'test'."""
    t = self._target_index(u, stage)
    return self.data.items[self.data.offsets[u]:t], int(self.data.items[t])

  def future(self, u: int, stage: str, k: int) -> np.ndarray:
    """Up to k true items from the stage's target onward (for multi-step metrics)."""
    start, end = self.data.offsets[u], self._end(u)
    first = end - 2 if stage == "valid" else end - 1
    return self.data.items[first:min(first + k, end)]


class DataTooSmallError(ValueError):
  """The dataset cannot be trained and evaluated (raised before any compilation)."""


def check_evaluable(split: LeaveOneOut, source: str = "") -> None:
  """Rejects a split with no user to validate and test on (every user has fewer than 3
  interactions) or nothing to train on, naming the source and what the filters left."""
  data = split.data
  where = f"{source}: " if source else ""
  rep = data.report
  dropped = ", ".join(f"{k} {rep[k]}" for k in ("malformed", "missing_ids", "below_min_rating",
                                                "dedup_dropped", "kcore_dropped")
                      if rep.get(k))
  left = (f"{data.num_users} users, {data.num_items} items, {data.items.size} interactions left"
          + (f" after dropping {dropped}" if dropped else ""))
  if split.eval_users.size == 0:
    raise DataTooSmallError(
        f"{where}no user has the 3 interactions leave-one-out evaluation needs ({left}); "
        "lower data.user_core / data.leave_last_k or use more data")
  lengths = split.train_end - data.offsets[:-1]
  if not (lengths >= 2).any():
    raise DataTooSmallError(
        f"{where}no training sequences: every user has fewer than 2 training items ({left})")


def train_item_counts(split: "LeaveOneOut") -> np.ndarray:
  """[num_items + 1] int64: how often each item occurs in the training parts of a split
  (never validation or test); row 0 (padding) is 0. Used by evaluation (popularity,
  novelty) and by the samplers (item frequencies)."""
  data = split.data
  return np.bincount(data.items[_training_positions(split)],
                     minlength=data.num_items + 1).astype(np.int64)


def _training_positions(split: "LeaveOneOut") -> np.ndarray:
  """[N] bool: the interactions a training sequence holds (cold items left out)."""
  data = split.data
  lengths = np.diff(data.offsets)
  user_of = np.repeat(np.arange(lengths.size), lengths)  # [N]
  in_train = np.arange(data.items.size) < split.train_end[user_of]
  if split.cold is not None:
    in_train &= ~split.cold[data.items]
  return in_train


def cold_items(num_items: int, frac: float, seed: int = 0) -> np.ndarray | None:
  """[num_items + 1] bool: a random `frac` of the items (never padding); None for 0."""
  if not frac:
    return None
  if not 0.0 < frac < 1.0:
    raise ValueError(f"data.cold_items_frac={frac} must be in [0, 1)")
  rng = np.random.default_rng(seed)
  chosen = rng.choice(np.arange(1, num_items + 1), size=max(1, int(round(frac * num_items))),
                      replace=False)
  mask = np.zeros(num_items + 1, bool)
  mask[chosen] = True
  return mask


def split_for(data_cfg, data: SequenceDataset, time_features: str = "") -> LeaveOneOut:
  """The split a `data` config asks for: leave_last_k and the cold items; with
  `time_features` (config `model.time_features`) each interaction's feature ids."""
  split = leave_one_out(data, data_cfg.leave_last_k,
                        cold=cold_items(data.num_items, float(data_cfg.get("cold_items_frac", 0.0)),
                                        int(data_cfg.get("cold_seed", 0))))
  if time_features:
    from seqrec_jax.data import time_features as tf  # pylint: disable=import-outside-toplevel
    split = dataclasses.replace(split, features=tf.interaction_features(
        data, time_features, source=f"data.path={data_cfg.get('path', '')!r}"))
  return split


def leave_one_out(data: SequenceDataset, leave_last_k: int = 0,
                  cold: np.ndarray | None = None) -> LeaveOneOut:
  """Leave-one-out split; `leave_last_k > 0` first sets each user's last k items aside;
  `cold` ([num_items + 1] bool) items are left out of every training sequence."""
  if leave_last_k < 0:
    raise ValueError(f"leave_last_k={leave_last_k} must be >= 0")
  ends = np.maximum(data.offsets[1:] - leave_last_k, data.offsets[:-1])  # [U]
  evaluated = (ends - data.offsets[:-1]) >= 3
  train_end = np.where(evaluated, ends - 2, ends)
  return LeaveOneOut(data=data, train_end=train_end.astype(np.int64),
                     eval_users=np.flatnonzero(evaluated).astype(np.int64),
                     ends=ends.astype(np.int64) if leave_last_k else None, cold=cold)
