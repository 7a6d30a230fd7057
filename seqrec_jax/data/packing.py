"""Packed sequences: several short training histories in one row of `max_len` positions.

Most rows of a plain batch are padding on short-session data (Amazon, Yelp): a row
holds one history however short. Packing fills each row with several histories, one
after another; the batch gains `segment_ids` [B, L] (1, 2, ... per history, 0 =
padding) and `positions` [B, L] (restarting at 0 per history). The models turn them
into a block-diagonal (causal, or bidirectional for the cloze task) attention mask and
per-history position embeddings (`models.layers.segment_mask`), so every history gets
exactly the states, per-target losses and gradients of its own unpacked row.

How the rows are laid out (deterministic, no sequence dropped, a fixed row count):

  * Once per source: a *template*, best-fit decreasing bin packing of the multiset of
    window lengths (each history cropped to at most `max_len` first, as unpacked): the
    longest windows first, each into the open row with the least room that still fits
    it. `PackedSequences.__len__` is its row count R, so `len(source) // batch_size`
    steps make an epoch, as for plain batches.
  * Per epoch: the epoch's permutation (`pipeline.epoch_permutation`, the unpacked
    order) deals the histories of each window length, in that order, to the template's
    slots of that length, and the R rows are visited in a fresh random order. Every
    history trains exactly once per epoch, with the example (crop, masks) that the
    unpacked stream gives it that epoch: its randomness is seeded from the same (seed,
    global index), so an epoch of packed rows is the unpacked epoch's examples
    rearranged.

The stream is random access by row (`PackedEpochs`), sliced per process like the plain
one, and Grain's iterator state (a position) is all a checkpoint needs. The device path
(`data/device_data.py`) uploads the template once and each epoch's assignment and row
order, and builds the same rows inside the jitted step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grain
import numpy as np

from seqrec_jax.data import pipeline


@dataclasses.dataclass(frozen=True)
class Template:
  """Where each window goes: n slots (one per history) in R rows of `row_len`.

  Slots are sorted by row, then offset; the segment of slot s covers positions
  `offset[s] : offset[s] + length[s]` of row `row[s]`; row r holds slots
  `row_start[r] : row_start[r + 1]`. `by_length`: the slots sorted by length (stable),
  the order in which an epoch deals out each length's histories.
  """

  row_len: int
  length: np.ndarray  # [n] int32 window length of each slot
  offset: np.ndarray  # [n] int32 first position of the slot in its row
  row: np.ndarray  # [n] int32 row of the slot
  row_start: np.ndarray  # [R + 1] int64 CSR of the slots of each row
  by_length: np.ndarray  # [n] int64

  @property
  def num_rows(self) -> int:
    return int(self.row_start.size - 1)

  def position_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row and position: (slot [R, L] int32, -1 = padding; position within the
    segment [R, L] int32; segment id [R, L] int32, 1.. in the row, 0 = padding)."""
    r, length = self.num_rows, self.row_len
    slot = np.full((r, length), -1, np.int32)
    pos = np.zeros((r, length), np.int32)
    seg = np.zeros((r, length), np.int32)
    n = self.length.size
    first = self.row_start[self.row]  # [n] first slot of each slot's row
    seg_id = (np.arange(n) - first + 1).astype(np.int32)  # [n]
    cells = np.repeat(np.arange(n), self.length)  # [sum] slot of each filled cell
    within = np.arange(cells.size) - np.repeat(np.cumsum(self.length) - self.length, self.length)
    cols = self.offset[cells] + within
    slot[self.row[cells], cols] = cells
    pos[self.row[cells], cols] = within
    seg[self.row[cells], cols] = seg_id[cells]
    return slot, pos, seg


def pack_template(lengths: np.ndarray, row_len: int) -> Template:
  """Best-fit decreasing packing of windows of `lengths` [n] (each 1..row_len) into rows
  of `row_len`: longest first, each into the row with the least room left that fits it
  (ties: the row that got there last), a new row when none does. O(n * row_len)."""
  lengths = np.asarray(lengths, np.int64)
  if lengths.size == 0:
    raise ValueError("nothing to pack: no training sequences")
  if lengths.min() < 1 or lengths.max() > row_len:
    raise ValueError(f"window lengths must be in 1..{row_len}, got {lengths.min()}.."
                     f"{lengths.max()}")
  order = np.argsort(-lengths, kind="stable")
  free: list[list[int]] = [[] for _ in range(row_len + 1)]  # rows by room left
  rows = 0
  slot_row = np.empty(lengths.size, np.int64)
  slot_offset = np.empty(lengths.size, np.int64)
  for item in order.tolist():
    need = int(lengths[item])
    for room in range(need, row_len + 1):
      if free[room]:
        row = free[room].pop()
        break
    else:
      row, room = rows, row_len
      rows += 1
    slot_row[item], slot_offset[item] = row, row_len - room
    free[room - need].append(row)
  slots = np.lexsort((slot_offset, slot_row))  # by row, then offset
  row = slot_row[slots]
  length = lengths[slots]
  return Template(row_len=int(row_len), length=length.astype(np.int32),
                  offset=slot_offset[slots].astype(np.int32), row=row.astype(np.int32),
                  row_start=np.searchsorted(row, np.arange(rows + 1)).astype(np.int64),
                  by_length=np.argsort(length, kind="stable"))


class PackedSequences:
  """A training source (`pipeline.TrainSequences`) seen as packed rows of `row_len`.

  `window_lengths` [n]: each sequence's window (`example_fn.window_lengths`). `len()`
  is the number of rows per epoch (so `len(source) // batch_size` steps make an epoch);
  `users` / `lengths` are the underlying sequences' (what the device path reads), and
  `source` is the sequence source itself.
  """

  def __init__(self, source, window_lengths: np.ndarray, row_len: int):
    self.source = source
    self.windows = np.asarray(window_lengths, np.int64)  # [n]
    if self.windows.size != len(source):
      raise ValueError(f"{self.windows.size} window lengths for {len(source)} sequences")
    self.row_len = int(row_len)
    self.template = pack_template(self.windows, self.row_len)

  @property
  def users(self) -> np.ndarray:
    return self.source.users

  @property
  def lengths(self) -> np.ndarray:
    return self.source.lengths

  @property
  def num_sequences(self) -> int:
    return int(self.windows.size)

  def __len__(self) -> int:
    return self.template.num_rows

  def epoch_layout(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (template row of each of the epoch's R rows, in visiting order [R];
    sequence in each slot [n]; its position in the epoch's permutation [n], so its
    global element index is `epoch * n + position`, as in the unpacked stream)."""
    n = self.num_sequences
    perm = pipeline.epoch_permutation(seed, epoch, n)  # position -> sequence
    grouped = np.argsort(self.windows[perm], kind="stable")  # positions by length, in order
    slot_pos = np.empty(n, np.int64)
    slot_pos[self.template.by_length] = grouped
    rows = np.random.default_rng([seed, epoch, 3]).permutation(self.template.num_rows)
    return rows, perm[slot_pos], slot_pos

  def fill(self) -> float:
    """Share of the rows' positions that hold a real position."""
    return float(self.windows.sum() / (len(self) * self.row_len))

  def __repr__(self) -> str:
    return (f"PackedSequences({self.num_sequences} sequences in {len(self)} rows of "
            f"{self.row_len}, fill {self.fill():.3f})")


class PackedEpochs(pipeline.EpochShuffled):
  """Random access over packed rows, epoch after epoch (`PackedSequences.epoch_layout`).

  Element i is (i, [(global index, sequence, offset, length) per segment]): row
  i % R of epoch i // R."""

  def __init__(self, packed: PackedSequences, seed: int, max_epochs: int = 1_000_000):
    super().__init__(packed.source, seed, max_epochs)
    self.packed = packed
    self.per_epoch = len(packed)

  def epoch_order(self, epoch: int):
    return self.packed.epoch_layout(self.seed, epoch)

  def segments(self, i: int) -> list[tuple[int, int, int, int]]:
    """(global index, sequence index, offset, length) of each segment of row i."""
    pos, (rows, slot_seq, slot_pos) = self._locate(i)
    epoch = int(i) // self.per_epoch
    t = self.packed.template
    r = int(rows[pos])
    slots = range(int(t.row_start[r]), int(t.row_start[r + 1]))
    return [(epoch * self.n + int(slot_pos[s]), int(slot_seq[s]), int(t.offset[s]),
             int(t.length[s])) for s in slots]

  def __getitem__(self, i: int):
    return int(i), [(g, self.source[seq], off, n) for g, seq, off, n in self.segments(i)]

  def __repr__(self) -> str:
    return f"PackedEpochs({self.packed!r}, seed={self.seed})"


@dataclasses.dataclass(frozen=True)
class PackRow:
  """Maps a `PackedEpochs` element to one packed row: each segment's example
  (`example_fn(seq, default_rng([seed, global index]))`, the unpacked example) copied
  into its slot, plus `segment_ids` and `positions`. With `max_predictions` P > 0
  (cloze) the row also gets `masked_positions/targets/weights` [P]; a row with more
  than P masked positions keeps a random P of them (`pipeline.cap_predictions`)."""

  example_fn: Callable
  row_len: int
  seed: int
  max_predictions: int = 0

  def __call__(self, element) -> dict:
    index, segments = element
    row: dict[str, np.ndarray] = {}
    segment_ids = np.zeros(self.row_len, np.int32)
    positions = np.zeros(self.row_len, np.int32)
    for j, (g, seq, off, n) in enumerate(segments):
      ex = self.example_fn(seq, np.random.default_rng([self.seed, g]))
      for key in self.example_fn.window_keys:
        if key not in row:  # [row_len] (or [row_len, 1 + F] tokens with time features)
          row[key] = np.zeros((self.row_len,) + ex[key].shape[1:], ex[key].dtype)
        row[key][off:off + n] = ex[key][:n]
      segment_ids[off:off + n] = j + 1
      positions[off:off + n] = np.arange(n)
    row["segment_ids"], row["positions"] = segment_ids, positions
    if self.max_predictions:
      row = pipeline.cap_predictions(row, self.max_predictions,
                                     np.random.default_rng([self.seed, index, 7]))
    return row


def packed_dataset(packed: PackedSequences, example_fn, *, global_batch: int, seed: int,
                   process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """`pipeline.train_dataset` for a packed source: batches of packed rows, each process
  a disjoint `1/process_count` slice of the row stream."""
  stream = PackedEpochs(packed, seed)
  make = PackRow(example_fn, packed.row_len, seed, getattr(example_fn, "max_predictions", 0))
  ds = grain.MapDataset.source(stream)[process_index::process_count].map(make)
  ds = ds.batch(global_batch // process_count, drop_remainder=True)
  return ds.to_iter_dataset()


def padding_fraction(packed: PackedSequences) -> float:
  """Share of computed positions that are padding in packed rows."""
  return 1.0 - packed.fill()
