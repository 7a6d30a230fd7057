"""Item representations (`model.item_repr`): how an item id becomes a vector, for the
input lookup and the output table alike (scoring stays `state @ table.T`).

  id            a learned table (today's ItemEmbedding);
  text_init     the learned table, initialised from a PCA projection of the items' text
                embeddings (`seqrec_jax.text`), then trained;
  text_adapter  the learned table combined with a frozen text embedding through a learned
                MLP adapter: `model.item_combine` "sum" (id + adapter(text)) or "gate"
                (g * id + (1 - g) * adapter(text), g = sigmoid(W [id; adapter(text)]));
  text_only     no id table: adapter(frozen text). An item that was never trained on has
                a representation and can be recommended (cold start). Padding and the
                special tokens (e.g. BERT4Rec's mask) keep small learned rows.
  text_finetune text_adapter whose text vectors come from the top `model.finetune_layers`
                layers of the text encoder, trained end to end (models/text_finetune.py:
                the batch's items recomputed per step, the whole table per epoch).

`model.id_dropout` p > 0 (text_adapter): while training, each item's id row is dropped
(zeroed; the kept ones scaled by 1 / (1 - p)) with probability p per table build, so the
adapter's text part must score items on its own: what a rare or never-trained item has.
Evaluation uses every row. A table built without a "dropout" rng (evaluation, serving)
never drops.

With attributes (`model.item_attributes`: S3-Rec `X_item2attributes.json`, a second,
non-text side feature), every item row also adds the mean of its attributes' learned
embeddings (an embedding bag; the [rows, A] id matrix is a constant of the program).

The frozen text table is a parameter named `frozen_text` (checkpointed with the model,
sharded along `vocab`); its gradient is stopped and the optimizer leaves it alone (no
weight decay: `train/optim.py`). Rows: 0 padding, 1..num_items items, then special
tokens, then alignment padding, as ItemEmbedding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqrec_jax.models import layers

MODES = ("id", "text_init", "text_adapter", "text_only", "text_finetune")
TEXT_ADAPTED = ("text_adapter", "text_only", "text_finetune")  # modes with the adapter MLP
COMBINES = ("sum", "gate")
FROZEN = "frozen_text"  # the parameter name the optimizer skips


class HostArray:
  """A host array as a module field: hashed and compared by identity (Flax modules are
  hashed as static arguments; numpy arrays are not hashable)."""

  def __init__(self, array: np.ndarray):
    self.array = np.asarray(array)

  def __hash__(self) -> int:
    return id(self)

  def __eq__(self, other) -> bool:
    return self is other

  @property
  def shape(self):
    return self.array.shape


def padded_rows(num_items: int, num_special: int, multiple: int = 128) -> int:
  rows = num_items + 1 + num_special
  return -(-rows // multiple) * multiple


def pca_init(text: np.ndarray, features: int, stddev: float = 0.02) -> Callable:
  """An initializer for a [rows, features] table: row i = the top-`features` principal
  components of item i's text embedding (rows 1..num_items of `text`), scaled to the
  default init's `stddev`; other rows (padding, special) random as usual."""
  text = np.asarray(text, np.float32)
  items = text[1:]
  centred = items - items.mean(0, keepdims=True)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  k = min(features, vt.shape[0])
  proj = centred @ vt[:k].T  # [num_items, k]
  proj = proj / max(float(proj.std()), 1e-12) * stddev
  if k < features:  # more features than text dimensions: random rest
    proj = np.concatenate([proj, np.zeros((proj.shape[0], features - k), np.float32)], 1)

  def init(key, shape, dtype=jnp.float32):
    table = jax.random.normal(key, shape, dtype) * stddev
    return table.at[1:1 + proj.shape[0], :].set(jnp.asarray(proj, dtype))

  return init


def frozen_init(text: np.ndarray | None, text_dim: int) -> Callable:
  """The initializer of the frozen text table: `text` [num_items + 1, T] placed in rows
  0..num_items (zeros elsewhere); with `text` None, zeros (a restore overwrites it)."""
  def init(key, shape, dtype=jnp.float32):
    del key
    out = jnp.zeros(shape, dtype)
    if text is None:
      return out
    if text.shape[1] != text_dim:
      raise ValueError(f"item text embeddings have dim {text.shape[1]}, expected {text_dim}")
    return out.at[:text.shape[0]].set(jnp.asarray(text, dtype))
  return init


class ItemRepresentation(nn.Module):
  """The item table of one `model.item_repr` mode (see the module docstring)."""

  is_item_lookup: ClassVar[bool] = True  # explanations hook the lookup (infer/explain.py)
  num_items: int
  features: int
  num_special: int = 0
  mode: str = "id"
  combine: str = "sum"
  adapter_dim: int = 0  # hidden width of the adapter MLP (0: 2 * features)
  text_dim: int = 0  # width of the text embeddings
  text: HostArray | None = None  # [num_items + 1, text_dim], read only at init
  attributes: HostArray | None = None  # [num_items + 1, A] int attribute ids (0 = none)
  num_attributes: int = 0
  id_dropout: float = 0.0  # text_adapter: drop probability of an item's id row in training
  finetune: Any = None  # text_finetune: models.text_finetune.FinetuneText
  finetune_items: int = 256  # text_finetune: items recomputed with gradient per step
  dtype: Any = jnp.float32

  def setup(self):
    if self.mode not in MODES:
      raise ValueError(f"model.item_repr={self.mode!r}: expected one of {list(MODES)}")
    rows = padded_rows(self.num_items, self.num_special)
    if self.mode != "text_only":
      init = nn.initializers.normal(stddev=0.02)
      if self.mode == "text_init" and self.text is not None:
        init = pca_init(self.text.array, self.features)
      self.embedding = self.param("embedding", nn.with_logical_partitioning(
          init, (layers.VOCAB, layers.EMBED)), (rows, self.features), jnp.float32)
    if self.attributes is not None:
      self.attribute_embedding = nn.Embed(self.num_attributes + 1, self.features,
                                          embedding_init=nn.initializers.normal(stddev=0.02),
                                          dtype=self.dtype, name="attribute_embedding")
    if self.mode == "text_finetune":
      if self.finetune is None:
        raise ValueError("model.item_repr='text_finetune' needs the text encoder's inputs "
                         "(seqrec_jax.text.item_features)")
      from seqrec_jax.models import text_finetune  # pylint: disable=import-outside-toplevel
      self.finetuned = text_finetune.FinetunedText(self.finetune, rows, self.finetune_items,
                                                   name=text_finetune.NAME)
    elif self.mode in ("text_adapter", "text_only"):
      if self.text_dim <= 0:
        raise ValueError(f"model.item_repr={self.mode!r} needs the item text embeddings "
                         "(text.* config; python -m seqrec_jax.prepare_text)")
      self.frozen = self.param(FROZEN, nn.with_logical_partitioning(
          frozen_init(None if self.text is None else self.text.array, self.text_dim),
          (layers.VOCAB, None)),
                               (rows, self.text_dim), jnp.float32)
    if self.mode in TEXT_ADAPTED:
      hidden = self.adapter_dim or 2 * self.features
      self.adapter_in = nn.Dense(hidden, dtype=self.dtype, name="adapter_in")
      self.adapter_out = nn.Dense(self.features, dtype=self.dtype, name="adapter_out")
      if self.mode == "text_only":  # padding + special tokens
        self.special = self.param("special_rows", nn.initializers.normal(stddev=0.02),
                                  (1 + self.num_special, self.features), jnp.float32)
      elif self.combine == "gate":
        self.gate = nn.Dense(self.features, dtype=self.dtype, name="gate")
      elif self.combine != "sum":
        raise ValueError(f"model.item_combine={self.combine!r}: expected one of "
                         f"{list(COMBINES)}")

  def _text(self, batch_items: jax.Array | None) -> jax.Array:
    """[rows, T] the text vectors: frozen, or (text_finetune) the encoder's, with the
    batch's items recomputed with gradient while training."""
    if self.mode != "text_finetune":
      return jax.lax.stop_gradient(self.frozen)
    if batch_items is None or not self.has_rng("dropout") or self.is_initializing():
      return self.finetuned.cached()
    return self.finetuned.with_fresh(batch_items)

  def _adapted(self, batch_items: jax.Array | None = None) -> jax.Array:
    text = self._text(batch_items).astype(self.dtype)  # [rows, T]
    return self.adapter_out(nn.gelu(self.adapter_in(text)))  # [rows, D]

  def _dropped(self, ids: jax.Array) -> jax.Array:
    """[rows, D] id rows with `id_dropout` applied (training only: a "dropout" rng)."""
    if not self.id_dropout or not self.has_rng("dropout") or self.is_initializing():
      return ids
    keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.id_dropout,
                                (ids.shape[0], 1))
    return jnp.where(keep, ids / (1.0 - self.id_dropout), 0.0).astype(ids.dtype)

  def _attribute_bag(self, ids: jax.Array) -> jax.Array:
    """[...] item ids -> [..., D]: the mean embedding of each item's attributes (0 for an
    item without any, padding and special rows)."""
    attrs = np.zeros((padded_rows(self.num_items, self.num_special),
                      self.attributes.shape[1]), np.int32)
    attrs[:self.attributes.shape[0]] = self.attributes.array.astype(np.int32)
    a = jnp.asarray(attrs)[ids]  # [..., A]
    emb = self.attribute_embedding(a) * (a > 0)[..., None].astype(self.dtype)  # [..., A, D]
    return emb.sum(-2) / jnp.maximum((a > 0).sum(-1, keepdims=True), 1).astype(self.dtype)

  def table(self, batch_items: jax.Array | None = None) -> jax.Array:
    """[rows, D]: every row's vector (what both the lookup and the scores use).
    `batch_items` (text_finetune, training): the batch's targets, some of whose rows are
    recomputed by the encoder with gradient."""
    out = self._base_table(batch_items)
    if self.attributes is not None:
      out = out + self._attribute_bag(jnp.arange(out.shape[0]))
    return out

  def _base_table(self, batch_items: jax.Array | None = None) -> jax.Array:
    if self.mode in ("id", "text_init"):
      return self.embedding.astype(self.dtype)
    adapted = self._adapted(batch_items)
    if self.mode == "text_only":
      rows = jnp.arange(adapted.shape[0])
      special = jnp.clip(rows - self.num_items, 0, self.num_special)  # 0 = padding row
      own = (rows == 0) | (rows > self.num_items)
      return jnp.where(own[:, None], self.special[special].astype(self.dtype), adapted)
    ids = self._dropped(self.embedding.astype(self.dtype))
    if self.combine == "sum":
      return ids + adapted
    g = nn.sigmoid(self.gate(jnp.concatenate([ids, adapted], axis=-1)))
    return g * ids + (1.0 - g) * adapted

  def __call__(self, ids: jax.Array) -> jax.Array:
    if self.mode in ("id", "text_init"):  # a plain gather (no [rows, D] pass)
      out = jnp.take(self.embedding, ids, axis=0).astype(self.dtype)
      return out + self._attribute_bag(ids) if self.attributes is not None else out
    return jnp.take(self.table(), ids, axis=0)

  def item_table(self, batch_items: jax.Array | None = None) -> jax.Array:
    """[V, D] rows 0..num_items (row i scores item i)."""
    return self.table(batch_items)[: self.num_items + 1]

  def refresh_text(self) -> jax.Array:
    """text_finetune: [rows, T] every row's text vector from the current encoder layers
    (the new `frozen_text`; models/text_finetune.py)."""
    return self.finetuned.refresh()


def needs_text(mode: str) -> bool:
  return mode in ("text_init", "text_adapter", "text_only", "text_finetune")
