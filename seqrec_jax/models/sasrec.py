"""SASRec: a causal Transformer over the item history (Kang & McAuley, 2018).

Scoring interface shared by every model: `encode(history) -> [B, D]` user state after
the last real item, `item_table() -> [V, D]` (row i scores item i; row 0 is padding).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.models import layers

Dtype = Any


class SASRec(nn.Module):
  num_items: int
  max_len: int
  embed_dim: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  mlp_dim: int = 256
  dropout: float = 0.2
  emb_dropout: float = 0.2
  dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  def setup(self):
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim, dtype=self.dtype)
    self.positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.blocks = [
        layers.TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
                                attention_impl=self.attention_impl, name=f"block_{i}")
        for i in range(self.num_blocks)]
    self.final_norm = nn.LayerNorm(dtype=self.dtype)

  def __call__(self, ids: jax.Array, train: bool = False) -> jax.Array:
    """Hidden state at every position. ids: [B, L] right-padded -> [B, L, D]."""
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    x = self.emb_drop(self.positions(x), deterministic=not train)
    x = x * (ids != layers.PAD_ID)[..., None].astype(x.dtype)
    for block in self.blocks:
      x = block(x, train=train, is_causal=True)
    return self.final_norm(x)

  def encode(self, history: jax.Array) -> jax.Array:
    """User state after the last real item. history: [B, L] -> [B, D]."""
    hidden = self(history, train=False)  # [B, L, D]
    last = jnp.maximum(layers.sequence_lengths(history) - 1, 0)  # [B]
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

  def item_table(self) -> jax.Array:
    return self.item_embedding.item_table()
