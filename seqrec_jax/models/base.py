"""`SequenceModel`: the hyper-parameters every sequence model shares, declared once.

A model subclasses it, adds only its own fields, and implements the scoring interface
(`models/interfaces.py`). `build_model` fills these fields from `config.model`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

# Fields of `config.model` passed to every model (besides num_items).
SHARED_FIELDS = ("max_len", "embed_dim", "num_blocks", "num_heads", "mlp_dim", "dropout",
                 "emb_dropout", "dtype", "attention_impl", "item_repr", "item_combine",
                 "adapter_dim", "id_dropout", "finetune_items")  # (model.item_attributes is read by text.item_features;
#                                    model.time_features is parsed by build_model)


class SequenceModel(nn.Module):
  """Base of every registered model: items 1..num_items (0 = padding), windows of
  `max_len`, `num_blocks` layers of width `embed_dim`."""

  num_items: int
  max_len: int
  embed_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  mlp_dim: int = 256
  dropout: float = 0.2
  emb_dropout: float = 0.2
  dtype: Dtype = jnp.float32
  attention_impl: str | None = None  # None: JAX picks ("xla" | "cudnn")
  # Rows after the items in the item table (e.g. a mask token): num_items + 1, ... They
  # move when the catalogue grows (`train/warm_start.py`).
  num_special_tokens: ClassVar[int] = 0
  # The item representation (models/item_repr.py): id | text_init | text_adapter |
  # text_only; models that build their table with `item_table_module` set
  # `supports_item_text`.
  item_repr: str = "id"
  item_combine: str = "sum"
  adapter_dim: int = 0
  id_dropout: float = 0.0  # text_adapter: training-time drop rate of whole id rows
  item_text: Any = None  # item_repr.HostArray [num_items + 1, T] of text embeddings
  text_dim: int = 0
  item_attributes: Any = None  # item_repr.HostArray [num_items + 1, A] attribute ids
  num_attributes: int = 0
  finetune: Any = None  # text_finetune: models.text_finetune.FinetuneText
  finetune_items: int = 256  # text_finetune: items recomputed with gradient per step
  supports_item_text: ClassVar[bool] = False
  # Time features of each history item (data/time_features.py: "gap", "hour"): history
  # tokens then come as [B, L, 1 + F]; models that embed them set `supports_time_features`.
  time_features: tuple[str, ...] = ()
  supports_time_features: ClassVar[bool] = False

  def item_table_module(self, num_special: int = 0, name: str | None = None):
    """This model's item table: the configured `item_repr` (ItemEmbedding's layout)."""
    from seqrec_jax.models.item_repr import ItemRepresentation  # pylint: disable=import-outside-toplevel
    return ItemRepresentation(self.num_items, self.embed_dim, num_special=num_special,
                              mode=self.item_repr, combine=self.item_combine,
                              adapter_dim=self.adapter_dim, text_dim=self.text_dim,
                              id_dropout=self.id_dropout, finetune=self.finetune,
                              finetune_items=self.finetune_items,
                              text=self.item_text, attributes=self.item_attributes,
                              num_attributes=self.num_attributes, dtype=self.dtype, name=name)

  def time_embedding_module(self):
    """The summed embeddings of `time_features` (None when there are none)."""
    if not self.time_features:
      return None
    from seqrec_jax.models.time_embedding import TimeEmbedding  # pylint: disable=import-outside-toplevel
    return TimeEmbedding(self.time_features, self.embed_dim, dtype=self.dtype)


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  """The compute dtype of `config.model.dtype` (parameters stay float32)."""
  if name not in _DTYPES:
    raise ValueError(f"model.dtype={name!r}: expected one of {sorted(_DTYPES)}")
  return _DTYPES[name]
