"""The fine-tuned text side of `model.item_repr="text_finetune"`: the top N layers of the
pretrained text encoder, trained end to end on the recommendation loss.

Every item's text is encoded once by the frozen bottom layers of the encoder; their token
states (`frozen_hidden` [rows, T, H], with `frozen_mask` [rows, T]) are parameters the
optimizer never touches, so a step runs only the top `layers` over them. Two ways a
pooled item vector is made from those states, both with the current top layers:

  cached   `frozen_text` [rows, H]: every item, recomputed by `refresh()` at the end of
           each epoch (the engine's epoch hook, before validation), so validation, the
           saved best model, serving and export see the encoder as it is. Its gradient is
           stopped.
  fresh    `fresh(items)`: the states of up to `finetune_items` items of the batch (drawn
           from the batch's targets, each position equally likely, so an item is picked
           in proportion to how often it is a target) recomputed with gradient, and
           written over their cached rows for this step's output table.

Why this split and not the whole table per step: one pass of one MiniLM layer over all
of Amazon Toys' 11,924 item texts (32 tokens) is ~1.3 TFLOP, seconds per step on a CPU;
the batch's own positives are where the loss asks an item's text to move, and the rest
of the table moves with them once per epoch. The cost is a table that is at most one
epoch stale for items that were not fresh in a step (their rows are exact again after
every refresh).

The module is pure Flax: the bottom states and the pretrained top layers come in as
host arrays read only at init (`FinetuneText`); a restore builds it from shapes alone and
the checkpoint supplies every value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqrec_jax.models import layers, text_encoder

HIDDEN, MASK, CACHE = "frozen_hidden", "frozen_mask", "frozen_text"  # optimizer-excluded
TOP = "text_layers"  # the trained encoder layers (their own learning rate: train/optim.py)
NAME = "text_finetune"  # this module's name inside models/item_repr.py


@dataclasses.dataclass(eq=False)
class FinetuneText:
  """What `text_finetune` is initialised from (hashed by identity: a module field).

  hidden [n + 1, T, H] bottom-layer token states (row 0, padding: zeros); mask [n + 1, T]
  (1 = real token); top: params of the top layers, `{"layer_0": ..., ...}` in
  `text_encoder.Layer` layout; pooled [n + 1, H] the full encoder's item vectors (the
  first cache). Any array None: zeros of the right shape (a restore fills them)."""

  config: Any  # text_encoder.BertConfig
  layers: int
  tokens: int
  normalize: bool = True
  hidden: np.ndarray | None = None
  mask: np.ndarray | None = None
  top: dict | None = None
  pooled: np.ndarray | None = None

  def __hash__(self) -> int:
    return id(self)


def _rows_init(array: np.ndarray | None, dtype=jnp.float32):
  """An initializer placing `array` in the first rows (zeros elsewhere; all zeros for None)."""
  def init(key, shape, dtype=dtype):
    del key
    out = jnp.zeros(shape, dtype)
    return out if array is None else out.at[:array.shape[0]].set(jnp.asarray(array, dtype))
  return init


def _top_init(spec: FinetuneText):
  def init(key):
    if spec.top is not None:
      return jax.tree.map(jnp.asarray, spec.top)
    keys = jax.random.split(key, spec.layers)
    bias = jnp.zeros((1, 1, 1, 2), jnp.float32)
    x = jnp.zeros((1, 2, spec.config.hidden_size), jnp.float32)
    layer = text_encoder.Layer(spec.config, parent=None)
    return {f"layer_{i}": layer.init(keys[i], x, bias)["params"] for i in range(spec.layers)}
  return init


class FinetunedText(nn.Module):
  """Pooled item text vectors from the trainable top encoder layers (module docstring)."""

  spec: FinetuneText
  rows: int  # table rows (padding, items, special, alignment)
  finetune_items: int = 256
  chunk: int = 512  # items per step of `refresh`

  def setup(self):
    cfg = self.spec.config
    shape = (self.rows, self.spec.tokens)
    self.hidden = self.param(HIDDEN, nn.with_logical_partitioning(
        _rows_init(self.spec.hidden, jnp.bfloat16), (layers.VOCAB, None, None)),
        (*shape, cfg.hidden_size), jnp.bfloat16)  # [rows, T, H]
    self.mask = self.param(MASK, nn.with_logical_partitioning(
        _rows_init(self.spec.mask), (layers.VOCAB, None)), shape, jnp.float32)  # [rows, T]
    self.cache = self.param(CACHE, nn.with_logical_partitioning(
        _rows_init(self.spec.pooled), (layers.VOCAB, None)),
        (self.rows, cfg.hidden_size), jnp.float32)  # [rows, H]
    self.top = self.param(TOP, _top_init(self.spec))

  def _encode(self, rows: jax.Array) -> jax.Array:
    """[M] row ids -> [M, H]: the top layers over their frozen states, mean-pooled."""
    x = jax.lax.stop_gradient(self.hidden[rows]).astype(jnp.float32)  # [M, T, H]
    mask = jax.lax.stop_gradient(self.mask[rows])  # [M, T]
    bias = text_encoder.key_bias(mask)
    layer = text_encoder.Layer(self.spec.config, parent=None)  # applied functionally
    for i in range(self.spec.layers):
      x = layer.apply({"params": self.top[f"layer_{i}"]}, x, bias)
    pooled = text_encoder.mean_pool(x, mask)  # [M, H]; 0 for a row without tokens
    return text_encoder.l2_normalize(pooled) if self.spec.normalize else pooled

  def cached(self) -> jax.Array:
    return jax.lax.stop_gradient(self.cache)  # [rows, H]

  def fresh_rows(self, items: jax.Array) -> jax.Array:
    """[...] target ids of the batch (0 = none) -> [finetune_items] rows to recompute:
    positions drawn without replacement among the real targets (0 = padding row when
    the batch has fewer)."""
    flat = items.reshape(-1)
    n = min(self.finetune_items, flat.shape[0])
    real = flat > 0
    # Gumbel top-k over the real positions: a uniform draw without replacement.
    noise = jax.random.gumbel(self.make_rng("dropout"), flat.shape)
    _, pos = jax.lax.top_k(jnp.where(real, noise, -jnp.inf), n)
    return jnp.where(real[pos], flat[pos], 0)

  def with_fresh(self, items: jax.Array) -> jax.Array:
    """[rows, H]: the cache with a sample of the batch's items recomputed (with gradient)."""
    rows = self.fresh_rows(items)
    return self.cached().at[rows].set(self._encode(rows))

  def refresh(self) -> jax.Array:
    """[rows, H]: every row recomputed by the current top layers (no gradient)."""
    step = min(self.chunk, self.rows)
    starts = jnp.arange(0, self.rows, step)
    def one(start):
      return self._encode(jnp.minimum(start + jnp.arange(step), self.rows - 1))
    out = jax.lax.map(one, starts).reshape(-1, self.spec.config.hidden_size)
    return jax.lax.stop_gradient(out[:self.rows])
