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
  """The last `length` items of seq, packed left and padded right with 0. -> [length]
  (or [length, C] for tokens with time features, seq [n, C])."""
  seq = seq[-length:] if length > 0 else seq[:0]
  out = np.zeros((length,) + seq.shape[1:], np.int32)
  out[: len(seq)] = seq
  return out


class TrainSequences:
  """Random-access source: the training sequence of each user with >= 2 training items.

  With `cover_window=L` > 0 a sequence of n items appears ceil((n - 1) / L) times, so
  with random window crops an epoch trains each target of a long history once in
  expectation (as prefix-per-target training does) instead of one window per user.
  """

  def __init__(self, split: LeaveOneOut, min_len: int = 2, cover_window: int = 0):
    lengths = split.train_lengths()
    users = np.flatnonzero(lengths >= min_len)  # [U']
    if cover_window > 0:
      copies = np.maximum(-(-(lengths[users] - 1) // cover_window), 1)  # [U']
      users = np.repeat(users, copies)
    self.users = users  # [n] user of each entry
    self.lengths = lengths[self.users]  # [n] training items of each entry's sequence
    self._split = split

  def __len__(self) -> int:
    return int(self.users.size)

  def __getitem__(self, index: int) -> np.ndarray:
    """The entry's training sequence: [n] items, or [n, 1 + F] tokens with time features."""
    return self._split.train_tokens(int(self.users[index]))

  def __repr__(self) -> str:
    return f"TrainSequences(users={len(self)})"


class CutSequences:
  """Every cut point of every training sequence: entry (u, c) for c in 1..n-1 is user
  u's sequence with the cut at c (the seq2seq task with `task.windows='every_cut'`: one
  epoch trains on each (history, future) pair once instead of one random cut per user).
  An item is `(sequence, cut)`; `lengths` is cut + 1 (so `Seq2SeqExample.window_lengths`
  is the history length)."""

  def __init__(self, split: LeaveOneOut, min_len: int = 2):
    lengths = split.train_lengths()
    users = np.flatnonzero(lengths >= min_len)
    cuts = lengths[users] - 1  # [U'] cut points per user
    self.users = np.repeat(users, cuts)  # [n]
    starts = np.repeat(np.cumsum(cuts) - cuts, cuts)
    self.cuts = (np.arange(self.users.size) - starts + 1).astype(np.int64)  # [n] 1..n_u-1
    self.lengths = self.cuts + 1
    self._split = split

  def __len__(self) -> int:
    return int(self.users.size)

  def __getitem__(self, index: int):
    return self._split.train_sequence(int(self.users[index])), int(self.cuts[index])

  def __repr__(self) -> str:
    return f"CutSequences(entries={len(self)})"


@dataclasses.dataclass(frozen=True)
class CausalExample:
  """Maps a training sequence to next-item inputs/targets of length max_len.

  crop="last" keeps the latest max_len+1 items (SASRec); crop="random" picks a random
  window end (augmentation for histories longer than the window). A sequence of tokens
  [n, 1 + F] (items with time features) gives inputs [L, 1 + F]; targets stay items.
  """

  max_len: int
  crop: str = "last"
  window_keys = ("inputs", "targets", "weights")  # the [L] arrays (cut by length grouping)

  def window_lengths(self, lengths: np.ndarray) -> np.ndarray:
    """Real positions of the example of a sequence of each length. [n] -> [n]."""
    return np.minimum(lengths - 1, self.max_len)

  def expected_targets(self, lengths: np.ndarray) -> np.ndarray:
    """Mean number of weighted targets of the example of each sequence. [n] -> [n]."""
    return self.window_lengths(lengths).astype(np.float64)

  def __call__(self, seq: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    n = len(seq)
    if self.crop == "random" and rng is not None and n > self.max_len + 1:
      end = int(rng.integers(self.max_len + 1, n + 1))
      seq = seq[:end]
    window = seq[-(self.max_len + 1):]
    items = window if window.ndim == 1 else window[:, 0]
    inputs = right_pad(window[:-1], self.max_len)  # [L] (or [L, 1 + F] tokens)
    targets = right_pad(items[1:], self.max_len)  # [L]
    return {"inputs": inputs, "targets": targets,
            "weights": (targets > 0).astype(np.float32)}


@dataclasses.dataclass(frozen=True)
class ClozeExample:
  """BERT4Rec's cloze task over the latest max_len items of a training sequence.

  Each real item is replaced by `mask_id` with probability `mask_prob`; with
  probability `mask_last_prob` the final item is masked as well (the next-item
  objective, matching how `BERT4Rec.encode` scores); at least one item is always
  masked. Padding is never masked. -> inputs (masks applied), targets (the original
  items at masked positions, else 0), weights (1 at masked positions), all [L].

  `max_predictions` P > 0 (`task.max_predictions`, BERT4Rec's max_predictions_per_seq):
  at most P positions are masked (a random P of them when more are drawn; the others
  keep their item) and the example also holds `masked_positions`, `masked_targets`,
  `masked_weights` [P] (`cap_predictions`), so the loss runs the output layer on P
  positions instead of L.
  """

  max_len: int
  mask_id: int
  mask_prob: float = 0.2
  mask_last_prob: float = 0.1
  crop: str = "last"
  max_predictions: int = 0
  window_keys = ("inputs", "targets", "weights")

  def window_lengths(self, lengths: np.ndarray) -> np.ndarray:
    return np.minimum(lengths, self.max_len)

  def expected_targets(self, lengths: np.ndarray) -> np.ndarray:
    """E[masked]: each item with mask_prob, the last one also with mask_last_prob, and
    one forced when none is (with `max_predictions`, that mean capped at P: an upper
    bound of E[min(masked, P)])."""
    w = self.window_lengths(lengths).astype(np.float64)
    p, q = self.mask_prob, self.mask_last_prob
    mean = w * p + q * (1 - p) + (1 - p) ** w * (1 - q)
    return np.minimum(mean, self.max_predictions) if self.max_predictions else mean

  def __call__(self, seq: np.ndarray, rng: np.random.Generator) -> dict:
    if self.crop == "random" and seq.size > self.max_len:
      seq = seq[:int(rng.integers(self.max_len, seq.size + 1))]
    window = seq[-self.max_len:]
    n = window.size
    masked = rng.random(n) < self.mask_prob  # [n]
    if n and rng.random() < self.mask_last_prob:
      masked[-1] = True
    if n and not masked.any():
      masked[int(rng.integers(n))] = True
    inputs = right_pad(window, self.max_len)  # [L]
    targets = np.zeros(self.max_len, np.int32)  # [L]
    targets[:n][masked] = window[masked]
    inputs[:n][masked] = self.mask_id
    example = {"inputs": inputs, "targets": targets, "weights": masked_weights(targets)}
    if self.max_predictions:
      example = cap_predictions(example, self.max_predictions, rng)
    return example


def cap_predictions(example: dict, max_predictions: int, rng: np.random.Generator) -> dict:
  """A cloze example (or packed row) with at most `max_predictions` P masked positions,
  and the gather arrays of the loss: when more are masked, a random P stay masked and
  the rest get their item back (input = target, weight 0). Adds `masked_positions`
  (int32, in increasing order, 0-padded), `masked_targets` (int32) and `masked_weights`
  (float32), each [P]; the [L] arrays are new copies."""
  inputs, targets = example["inputs"].copy(), example["targets"].copy()
  weights = example["weights"].copy()
  pos = np.flatnonzero(weights > 0)
  if pos.size > max_predictions:
    keep = np.sort(rng.choice(pos, max_predictions, replace=False))
    back = np.setdiff1d(pos, keep)
    inputs[back], targets[back], weights[back] = targets[back], 0, 0
    pos = keep
  positions = np.zeros(max_predictions, np.int32)
  positions[:pos.size] = pos
  gathered = np.zeros(max_predictions, np.int32)
  gathered[:pos.size] = targets[pos]
  return {**example, "inputs": inputs, "targets": targets, "weights": weights,
          "masked_positions": positions, "masked_targets": gathered,
          "masked_weights": masked_weights(gathered)}


@dataclasses.dataclass(frozen=True)
class Seq2SeqExample:
  """(history, next future_k items) from a training sequence cut at a random point.

  The cut c is uniform in 1..n-1 (at least one history item and one future item);
  history = the latest max_len items before c; targets = seq[c:c+k] (0-padded when
  the sequence ends first); dec_inputs = [bos_id] + targets[:-1] (teacher forcing).
  -> history [L], dec_inputs [k], targets [k], weights [k].
  """

  max_len: int
  future_k: int
  bos_id: int
  window_keys = ("history",)

  def window_lengths(self, lengths: np.ndarray) -> np.ndarray:
    """An upper bound: the history is cut at a random point before the last item."""
    return np.minimum(lengths - 1, self.max_len)

  def expected_targets(self, lengths: np.ndarray) -> np.ndarray:
    """Mean over the cut c in 1..n-1 of min(k, n - c) future items."""
    j = np.maximum(lengths - 1, 1).astype(np.float64)  # number of possible cuts
    m = np.minimum(self.future_k, j)
    return (m * (m + 1) / 2 + (j - m) * self.future_k) / j

  def __call__(self, seq, rng: np.random.Generator) -> dict:
    if isinstance(seq, tuple):  # (sequence, cut) from CutSequences
      seq, cut = seq
    else:
      cut = int(rng.integers(1, seq.size)) if seq.size > 1 else seq.size
    future = seq[cut:cut + self.future_k]
    targets = np.zeros(self.future_k, np.int32)  # [k]
    targets[:future.size] = future
    dec_inputs = np.zeros(self.future_k, np.int32)  # [k]
    dec_inputs[0] = self.bos_id
    dec_inputs[1:future.size] = future[:-1]
    return {"history": right_pad(seq[:cut], self.max_len), "dec_inputs": dec_inputs,
            "targets": targets, "weights": masked_weights(targets)}


def masked_weights(targets: np.ndarray) -> np.ndarray:
  return (targets > 0).astype(np.float32)


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the n training sequences. [n] int64.

  Shared by the Grain path and the device-resident path, so for one seed both train
  on the same batches.
  """
  return np.random.default_rng([seed, epoch]).permutation(n)


class EpochShuffled:
  """Random access over an endless stream of epochs, each a fresh permutation.

  Element i is (i, sequence): epoch i // n, position i % n. Keeping the global index
  lets the example map draw its randomness from (seed, i), reproducibly.
  """

  def __init__(self, source, seed: int, max_epochs: int = 1_000_000):
    self.source, self.seed, self.n, self.max_epochs = source, seed, len(source), max_epochs
    self.per_epoch = self.n  # stream elements per epoch
    self._cache = (-1, None)  # (epoch, epoch_order(epoch)): one attribute, swapped atomically

  def __len__(self) -> int:
    return self.per_epoch * self.max_epochs

  def epoch_order(self, epoch: int):
    """What one epoch visits: here the permutation of the n sequences. [n]"""
    return epoch_permutation(self.seed, epoch, self.n)

  def _locate(self, i: int):
    """(position of element i within its epoch, that epoch's `epoch_order`)."""
    epoch, pos = divmod(int(i), self.per_epoch)
    cached_epoch, order = self._cache  # Grain reads from several threads
    if epoch != cached_epoch:
      order = self.epoch_order(epoch)
      self._cache = (epoch, order)
    return pos, order

  def __getitem__(self, i: int):
    pos, perm = self._locate(i)
    return int(i), self.source[int(perm[pos])]

  def __repr__(self) -> str:
    return f"EpochShuffled({self.source!r}, seed={self.seed})"


def bucket_length(n: int, max_len: int) -> int:
  """The width of a batch whose longest window is n: 8 (n <= 8), else n rounded up to a
  multiple of 16 (up to 64) or of 32 (above), at most max_len. Few widths = few
  compilations; 8 serves the short sessions of Amazon-style data."""
  if n <= 8:
    return int(min(max_len, 8))
  step = 16 if n <= 64 else 32
  return int(min(max_len, -(-int(n) // step) * step))


class LengthGroupedEpochs(EpochShuffled):
  """`EpochShuffled` for length-grouped batching (padding skipped, not computed).

  Each epoch is a fresh `epoch_permutation` cut to whole batches (the n % B sequences
  left over sit that epoch out, as with drop-last), sorted by window length within
  groups of `group_batches` batches; each group's batches then run in a random order.
  Element i is (i, sequence, width), where width is `bucket_length` of the longest
  window in i's global batch, so every process cuts the batch's rows to the same
  width. Right padding and causal / padding masks make the cut exact: real positions
  see the same inputs.
  """

  def __init__(self, source, seed: int, window_lengths: np.ndarray, batch_size: int,
               group_batches: int, max_len: int, max_epochs: int = 1_000_000):
    super().__init__(source, seed, max_epochs)
    self.batch_size, self.group_batches, self.max_len = batch_size, group_batches, max_len
    self.lengths = np.asarray(window_lengths)  # [n]
    self.per_epoch = (self.n // batch_size) * batch_size
    if self.per_epoch == 0:
      raise ValueError(f"{self.n} training sequences do not fill one batch of {batch_size}")

  def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (sequence of each element [per_epoch], width of each batch [per_epoch // B])."""
    b = self.batch_size
    perm = super().epoch_order(epoch)[: self.per_epoch]
    rng = np.random.default_rng([self.seed, epoch, 1])
    groups = []
    for g in range(0, self.per_epoch, b * self.group_batches):
      group = perm[g:g + b * self.group_batches]
      group = group[np.argsort(self.lengths[group], kind="stable")].reshape(-1, b)
      groups.append(group[rng.permutation(len(group))])
    order = np.concatenate(groups)  # [batches, B]
    widths = np.array([bucket_length(self.lengths[row].max(), self.max_len) for row in order])
    return order.reshape(-1), widths

  def __getitem__(self, i: int):
    pos, (order, widths) = self._locate(i)
    return int(i), self.source[int(order[pos])], int(widths[pos // self.batch_size])

  def __repr__(self) -> str:
    return f"LengthGroupedEpochs({self.source!r}, seed={self.seed}, groups={self.group_batches})"


def cut_to_width(example: dict, keys: tuple[str, ...], width: int) -> dict:
  """The example with its window arrays cut to their first `width` positions."""
  return {k: (v[:width] if k in keys else v) for k, v in example.items()}


def train_dataset(source, example_fn, *, global_batch: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  group_batches: int = 0) -> grain.IterDataset:
  """Infinite, per-process stream of batches. Deterministic for a seed.

  `example_fn(seq, rng)` maps one sequence to a dict of fixed-shape arrays; `rng` is
  seeded from (seed, global index). Each process gets a disjoint `1/process_count`
  slice of the stream and batches of `global_batch // process_count` rows; the
  iterator's state (a position) is saved in checkpoints. With `group_batches` > 0,
  batches hold sequences of similar length and are cut to their longest window
  (`LengthGroupedEpochs`; needs `source.lengths`, `example_fn.window_lengths` and
  `example_fn.expected_targets`), so the step compiles once per width and skips most
  padding. Each grouped example also carries `loss_norm`, the dataset's mean targets
  per example: the loss divides by the batch's sum of it, not by the batch's own target
  count, so a target in a batch of short sequences weighs what it would in a random
  batch (`objectives.loss_denominator`).

  A packed source (`packing.PackedSequences`, `train.packing`) gives batches of packed
  rows instead (`packing.packed_dataset`; not combined with `group_batches`).
  """
  if global_batch % process_count:
    raise ValueError(f"batch_size {global_batch} is not divisible by {process_count} processes")
  if len(source) == 0:
    raise ValueError("no training sequences: every user has fewer than 2 training items")
  if hasattr(source, "template"):  # packing.PackedSequences
    if group_batches:
      raise ValueError("packed rows are not length-grouped: use train.packing or "
                       "train.length_grouping, not both")
    from seqrec_jax.data import packing  # pylint: disable=import-outside-toplevel (cycle)
    return packing.packed_dataset(source, example_fn, global_batch=global_batch, seed=seed,
                                  process_index=process_index, process_count=process_count)
  example = lambda x: example_fn(x[1], np.random.default_rng([seed, x[0]]))
  if group_batches > 0:
    stream = LengthGroupedEpochs(source, seed, example_fn.window_lengths(source.lengths),
                                 global_batch, group_batches, example_fn.max_len)
    norm = np.float32(np.mean(example_fn.expected_targets(source.lengths)))
    make = lambda x: {**cut_to_width(example(x), example_fn.window_keys, x[2]), "loss_norm": norm}
  else:
    stream, make = EpochShuffled(source, seed), example
  ds = grain.MapDataset.source(stream)[process_index::process_count].map(make)
  ds = ds.batch(global_batch // process_count, drop_remainder=True)
  return ds.to_iter_dataset()


@dataclasses.dataclass
class EvalArrays:
  """Everything needed to rank one stage's targets, as host arrays."""

  users: np.ndarray  # [E]
  history: np.ndarray  # [E, L] right-padded latest items ([E, L, 1 + F] with time features)
  targets: np.ndarray  # [E]
  seen: np.ndarray  # [E, S] every history item (0-padded), for exclude_seen

  def __len__(self) -> int:
    return int(self.users.size)


def eval_arrays(split: LeaveOneOut, stage: str, max_len: int) -> EvalArrays:
  """History windows and targets of every evaluated user for 'valid' or 'test'. With
  time features (`split.features`) the history is tokens [E, L, 1 + F]."""
  users = split.eval_users
  pairs = [split.history_and_target(int(u), stage) for u in users]
  longest = max((h.size for h, _ in pairs), default=1)
  width = () if split.features is None else (1 + split.features.shape[1],)
  history = np.zeros((users.size, max_len) + width, np.int32)
  seen = np.zeros((users.size, max(longest, 1)), np.int32)
  targets = np.zeros(users.size, np.int32)
  for row, (h, t) in enumerate(pairs):
    history[row] = right_pad(split.history_tokens(int(users[row]), stage) if width else h,
                             max_len)
    seen[row, : h.size] = h
    targets[row] = t
  return EvalArrays(users=users, history=history, targets=targets, seen=seen)


@dataclasses.dataclass
class FutureArrays:
  """Multi-step evaluation: each user's last k items as the future to predict."""

  users: np.ndarray  # [E]
  history: np.ndarray  # [E, L] right-padded latest items before the future
  future: np.ndarray  # [E, k] the true next k items, in order
  seen: np.ndarray  # [E, S] every history item (0-padded), for exclusion

  def __len__(self) -> int:
    return int(self.users.size)


def future_arrays(data, k: int, max_len: int, min_history: int = 3) -> FutureArrays:
  """History = all but the last k items, future = the last k, for every user with at
  least `min_history + k` items. Pair with a model trained on a split made with
  `leave_one_out(data, leave_last_k=k)`, which never trains on those k items."""
  lengths = data.lengths
  users = np.flatnonzero(lengths >= min_history + k).astype(np.int64)
  longest = int(lengths[users].max()) - k if users.size else 1
  history = np.zeros((users.size, max_len), np.int32)
  seen = np.zeros((users.size, max(longest, 1)), np.int32)
  future = np.zeros((users.size, k), np.int32)
  for row, u in enumerate(users):
    seq = data.sequence(int(u))
    history[row] = right_pad(seq[:-k], max_len)
    seen[row, : seq.size - k] = seq[:-k]
    future[row] = seq[-k:]
  return FutureArrays(users=users, history=history, future=future, seen=seen)
