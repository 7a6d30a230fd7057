"""The device-resident input path: the whole training set in accelerator memory, and
causal (SASRec) batches assembled inside the jitted step from a step number.

For data that fits on the device (MovieLens, Amazon, Yelp: a few MB), the host never
builds a batch: `DeviceCausalData` holds the CSR items, each training sequence's
[start, end), and the concatenated epoch permutations (`pipeline.epoch_permutation`,
computed on the host once and uploaded once), all replicated over the mesh. Batch k is
stream elements [k*B, (k+1)*B), exactly as `pipeline.train_dataset` orders them, so for
`crop="last"` and the same seed both paths train on the same batches.

`crop="random"` draws the window end with JAX randomness (`fold_in(crop_key, step)`),
so it is reproducible and resumable but not the same draw as the Grain path's numpy
generator.

Packed rows (`train.packing`, `data/packing.py`): the template's per-position layout
(slot, position in the segment, segment id: [R, L] each) is uploaded once, and per
epoch the sequence dealt to each slot and the order of the rows (n + R ints, the size
of the plain path's epoch order); batch k then gathers the same rows as the Grain
path's packed batch k (equal for `crop="last"`).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from seqrec_jax import parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import LeaveOneOut


@flax.struct.dataclass
class DeviceCausalData:
  """Everything the causal batch needs, as device arrays (a pytree; config is static)."""

  items: jax.Array  # [N] int32 every interaction, CSR order (dataset.items)
  starts: jax.Array  # [n] int32 first item of training sequence i (TrainSequences order)
  ends: jax.Array  # [n] int32 exclusive end of its training part
  # [S] int32 training sequence (packed: template row) of stream element g, epochs
  # concatenated
  order: jax.Array
  crop_key: jax.Array  # [2] uint32 raw key for crop="random"
  max_len: int = flax.struct.field(pytree_node=False)
  batch_size: int = flax.struct.field(pytree_node=False)  # global
  crop: str = flax.struct.field(pytree_node=False, default="last")
  process_count: int = flax.struct.field(pytree_node=False, default=1)
  rows_per_epoch: int = flax.struct.field(pytree_node=False, default=0)  # > 0: packed
  slot_seq: jax.Array | None = None  # [E*n] int32 packed: sequence in slot s of epoch e
  row_slot: jax.Array | None = None  # [R, L] int32 packed: slot at each position, -1 = pad
  row_pos: jax.Array | None = None  # [R, L] int32 packed: position within the segment
  row_seg: jax.Array | None = None  # [R, L] int32 packed: segment id (0 = padding)

  @property
  def num_sequences(self) -> int:
    return int(self.starts.shape[0])

  def batch(self, step: jax.Array) -> dict[str, jax.Array]:
    """Global batch number `step` (traced int32 []): inputs/targets/weights [B, L]."""
    return causal_batch(self, step)


def stream_order(seed: int, n: int, num_elements: int) -> np.ndarray:
  """Sequence index of stream elements 0..num_elements-1. -> [E*n] int32, E epochs.

  Element g is `epoch_permutation(seed, g // n, n)[g % n]`, the order of
  `pipeline.EpochShuffled`.
  """
  epochs = max(1, math.ceil(num_elements / n))
  return np.concatenate([pipeline.epoch_permutation(seed, e, n) for e in range(epochs)]
                        ).astype(np.int32)


def _replicate(x: np.ndarray, mesh: Mesh | None) -> jax.Array:
  if mesh is None:
    return jnp.asarray(x)
  sharding = parallel.replicated(mesh)
  return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def build_causal_data(split: LeaveOneOut, users: np.ndarray, *, max_len: int, batch_size: int,
                      num_steps: int, seed: int, crop: str = "last", mesh: Mesh | None = None,
                      process_count: int = 1, packed=None) -> DeviceCausalData:
  """Uploads `split`'s training sequences of `users` (`TrainSequences.users`) once.

  `num_steps` bounds the stream: the permutations of every epoch that steps
  0..num_steps-1 touch are precomputed (ceil(num_steps * B / n) epochs). `packed`: a
  `packing.PackedSequences` over the same sequences (batches of packed rows).
  """
  if crop not in ("last", "random"):
    raise ValueError(f"crop={crop!r}: expected 'last' or 'random'")
  if batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} is not divisible by {process_count} processes")
  n = int(users.size)
  if n == 0:
    raise ValueError("no training sequences: every user has fewer than 2 training items")
  data = split.data
  if data.items.size >= 2**31:
    raise ValueError(f"{data.items.size} interactions do not fit int32 indices")
  starts = data.offsets[:-1][users].astype(np.int32)  # [n]
  ends = split.train_end[users].astype(np.int32)  # [n]
  crop_key = np.asarray(jax.random.PRNGKey(seed ^ 0x5EC4), np.uint32)  # raw key
  put = lambda x: _replicate(np.asarray(x), mesh)
  common = dict(items=put(data.items.astype(np.int32)), starts=put(starts), ends=put(ends),
                crop_key=put(crop_key), max_len=max_len, batch_size=batch_size, crop=crop,
                process_count=process_count)
  if packed is None:
    order = stream_order(seed, n, num_steps * batch_size)  # [S]
    return DeviceCausalData(order=put(order), **common)
  if packed.num_sequences != n or packed.row_len != max_len:
    raise ValueError(f"packed source of {packed.num_sequences} sequences in rows of "
                     f"{packed.row_len} does not match {n} users and max_len={max_len}")
  rows = len(packed)
  epochs = max(1, math.ceil(num_steps * batch_size / rows))
  if epochs * max(n, rows) >= 2**31:
    raise ValueError(f"{epochs} epochs of {n} packed sequences do not fit int32 indices")
  layouts = [packed.epoch_layout(seed, e) for e in range(epochs)]
  row_slot, row_pos, row_seg = packed.template.position_arrays()  # [R, L] each
  return DeviceCausalData(
      order=put(np.concatenate([lay[0] for lay in layouts]).astype(np.int32)),
      slot_seq=put(np.concatenate([lay[1] for lay in layouts]).astype(np.int32)),
      row_slot=put(row_slot), row_pos=put(row_pos), row_seg=put(row_seg),
      rows_per_epoch=rows, **common)


def _stream_offsets(batch_size: int, process_count: int) -> jax.Array:
  """Row r of the global batch -> its element offset within the batch's B elements.

  The Grain path gives process p the elements p, p+P, ... and stacks the processes'
  rows, so row r = p * (B/P) + j holds element j*P + p. Identity for one process.
  """
  per = batch_size // process_count
  rows = jnp.arange(batch_size, dtype=jnp.int32)  # [B]
  return (rows % per) * process_count + rows // per


def causal_batch(data: DeviceCausalData, step: jax.Array) -> dict[str, jax.Array]:
  """Next-item batch `step`, as `pipeline.CausalExample` builds it: the last max_len+1
  items of each sequence (crop="last"), inputs = window[:-1], targets = window[1:],
  packed left, padded right with 0. -> inputs/targets int32 [B, L], weights f32 [B, L].
  Packed data: the packed rows, plus segment_ids / positions int32 [B, L]."""
  if data.rows_per_epoch:
    return packed_causal_batch(data, step)
  b, length = data.batch_size, data.max_len
  step = jnp.asarray(step, jnp.int32)
  elements = step * b + _stream_offsets(b, data.process_count)  # [B]
  seq = data.order[elements]  # [B]
  start, end = data.starts[seq], data.ends[seq]  # [B], [B]
  if data.crop == "random":
    # A window end uniform in [start + L + 1, end] for sequences longer than L + 1.
    count = jnp.maximum(end - start - length, 1)  # [B] number of possible ends
    key = jax.random.fold_in(data.crop_key, step)
    draw = jax.random.randint(key, (b,), 0, count)  # [B]
    end = jnp.where(end - start > length + 1, start + length + 1 + draw, end)
  window = jnp.minimum(end - start, length + 1)  # [B] items in the window
  first = end - window  # [B]
  cols = jnp.arange(length, dtype=jnp.int32)[None]  # [1, L]
  real = cols < (window - 1)[:, None]  # [B, L]
  pos = jnp.minimum(first[:, None] + cols, data.items.shape[0] - 2)  # [B, L]
  inputs = jnp.where(real, data.items[pos], 0)  # [B, L]
  targets = jnp.where(real, data.items[pos + 1], 0)  # [B, L]
  return {"inputs": inputs.astype(jnp.int32), "targets": targets.astype(jnp.int32),
          "weights": (targets > 0).astype(jnp.float32)}


def packed_causal_batch(data: DeviceCausalData, step: jax.Array) -> dict[str, jax.Array]:
  """Packed next-item batch `step`, the rows of `packing.PackRow` over
  `CausalExample`: each segment is its sequence's window (crop "last" or "random"),
  at the template's offset. -> inputs, targets, segment_ids, positions int32 [B, L],
  weights f32 [B, L]."""
  b, length, rows = data.batch_size, data.max_len, data.rows_per_epoch
  n = data.num_sequences
  step = jnp.asarray(step, jnp.int32)
  elements = step * b + _stream_offsets(b, data.process_count)  # [B] stream rows
  epoch = elements // rows  # [B]
  row = data.order[elements]  # [B] template row
  slot, pos, seg = data.row_slot[row], data.row_pos[row], data.row_seg[row]  # [B, L] each
  real = slot >= 0  # [B, L]
  seq = data.slot_seq[epoch[:, None] * n + jnp.maximum(slot, 0)]  # [B, L]
  start, end = data.starts[seq], data.ends[seq]  # [B, L]
  if data.crop == "random":
    # One draw per segment: the uniform at the segment's first column, so all its
    # positions agree on the window end.
    count = jnp.maximum(end - start - length, 1)  # [B, L]
    u = jax.random.uniform(jax.random.fold_in(data.crop_key, step), (b, length))
    cols = jnp.arange(length, dtype=jnp.int32)[None] - pos  # [B, L] segment start column
    u = jnp.take_along_axis(u, cols, axis=1)
    draw = jnp.minimum((u * count).astype(jnp.int32), count - 1)
    end = jnp.where(end - start > length + 1, start + length + 1 + draw, end)
  window = jnp.minimum(end - start, length + 1)  # [B, L] items in the segment's window
  at = jnp.minimum(end - window + pos, data.items.shape[0] - 2)  # [B, L]
  inputs = jnp.where(real, data.items[at], 0)
  targets = jnp.where(real, data.items[at + 1], 0)
  return {"inputs": inputs.astype(jnp.int32), "targets": targets.astype(jnp.int32),
          "weights": (targets > 0).astype(jnp.float32),
          "segment_ids": seg.astype(jnp.int32), "positions": pos.astype(jnp.int32)}
