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
                 "emb_dropout", "dtype", "attention_impl")


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


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(name: str):
  """The compute dtype of `config.model.dtype` (parameters stay float32)."""
  if name not in _DTYPES:
    raise ValueError(f"model.dtype={name!r}: expected one of {sorted(_DTYPES)}")
  return _DTYPES[name]
