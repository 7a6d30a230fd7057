"""Grain input pipelines: training batches per task and fixed-shape evaluation arrays.

Training: a `MapDataset` over training users, shuffled per epoch from a seed, sliced
per process (`[process_index::process_count]`), mapped to fixed-shape examples and
batched with `drop_remainder`, so every step has the same shapes. Rows are packed
left and padded right with 0.
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from seqrec_jax.data.dataset import LeaveOneOut


def right_pad(seq: np.ndarray, length: int) -> np.ndarray:
  """The last `length` items of seq, packed left and padded right with 0. -> [length]."""
  seq = seq[-length:] if length > 0 else seq[:0]
  out = np.zeros(length, np.int32)
  out[: seq.size] = seq
  return out


class TrainSequences:
  """Random-access source: the training sequence of each user with >= 2 training items."""

  def __init__(self, split: LeaveOneOut, min_len: int = 2):
    data = split.data
    lengths = split.train_end - data.offsets[:-1]
    self.users = np.flatnonzero(lengths >= min_len)  # [U']
    self._split = split

  def __len__(self) -> int:
    return int(self.users.size)

  def __getitem__(self, index: int) -> np.ndarray:
    return self._split.train_sequence(int(self.users[index]))

  def __repr__(self) -> str:
    return f"TrainSequences(users={len(self)})"


@dataclasses.dataclass(frozen=True)
class CausalExample:
  """Maps a training sequence to next-item inputs/targets of length max_len.

  crop="last" keeps the latest max_len+1 items (SASRec); crop="random" picks a random
  window end (augmentation for histories longer than the window).
  """

  max_len: int
  crop: str = "last"

  def __call__(self, seq: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    if self.crop == "random" and rng is not None and seq.size > self.max_len + 1:
      end = int(rng.integers(self.max_len + 1, seq.size + 1))
      seq = seq[:end]
    window = seq[-(self.max_len + 1):]
    inputs = right_pad(window[:-1], self.max_len)  # [L]
    targets = right_pad(window[1:], self.max_len)  # [L]
    return {"inputs": inputs, "targets": targets,
            "weights": (targets > 0).astype(np.float32)}


def train_dataset(source, example_fn, *, global_batch: int, seed: int,
                  process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """Infinite, per-process stream of fixed-shape batches. Deterministic for a seed.

  `example_fn(seq, rng)` maps one sequence to a dict of fixed-shape arrays. Each
  process gets a disjoint `1/process_count` slice and batches of
  `global_batch // process_count` rows.
  """
  if global_batch % process_count:
    raise ValueError(f"batch_size {global_batch} is not divisible by {process_count} processes")
  if len(source) == 0:
    raise ValueError("no training sequences: every user has fewer than 2 training items")
  ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
  ds = ds[process_index::process_count]
  ds = ds.random_map(lambda seq, rng: example_fn(seq, rng))
  ds = ds.batch(global_batch // process_count, drop_remainder=True)
  return ds.to_iter_dataset()


@dataclasses.dataclass
class EvalArrays:
  """Everything needed to rank one stage's targets, as host arrays."""

  users: np.ndarray  # [E]
  history: np.ndarray  # [E, L] right-padded latest items
  targets: np.ndarray  # [E]
  seen: np.ndarray  # [E, S] every history item (0-padded), for exclude_seen

  def __len__(self) -> int:
    return int(self.users.size)


def eval_arrays(split: LeaveOneOut, stage: str, max_len: int) -> EvalArrays:
  """History windows and targets of every evaluated user for 'valid' or 'test'."""
  users = split.eval_users
  pairs = [split.history_and_target(int(u), stage) for u in users]
  longest = max((h.size for h, _ in pairs), default=1)
  history = np.zeros((users.size, max_len), np.int32)
  seen = np.zeros((users.size, max(longest, 1)), np.int32)
  targets = np.zeros(users.size, np.int32)
  for row, (h, t) in enumerate(pairs):
    history[row] = right_pad(h, max_len)
    seen[row, : h.size] = h
    targets[row] = t
  return EvalArrays(users=users, history=history, targets=targets, seen=seen)
