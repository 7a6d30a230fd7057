"""BERT4Rec: a bidirectional Transformer over the history, trained with the cloze task
(Sun et al., 2019).

Training inputs have some items replaced by the mask token (the special row
`num_items + 1` of the item table) and the model predicts the original items there
(`data.pipeline.ClozeExample`). To recommend, `encode(history)` appends the mask
token after the last real item (dropping the oldest item when the window is full)
and returns the hidden state at that position. Same scoring interface as SASRec:
`encode(history) -> [B, D]`, `item_table() -> [V, D]` (mask token not included).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.models import layers
from seqrec_jax.models.base import SequenceModel
from seqrec_jax.models.registry import register_model


def _preset(cfg, movielens: bool) -> None:
  """BERT4Rec's settings in the dataset presets (`presets.preset`)."""
  cfg.task.mask_prob = 0.2 if movielens else 0.4
  cfg.task.mask_last_prob = 0.1
  cfg.model.num_heads = 2
  cfg.model.dropout = cfg.model.emb_dropout = 0.1


@register_model("bert4rec", tasks=("cloze",), preset=_preset)
class BERT4Rec(SequenceModel):
  num_heads: int = 2  # BERT4Rec's own defaults for direct construction
  dropout: float = 0.1
  emb_dropout: float = 0.1

  @property
  def mask_id(self) -> int:
    return self.num_items + 1

  def setup(self):
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim, num_special=1,
                                               dtype=self.dtype)
    self.positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.blocks = [
        layers.TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
                                attention_impl=self.attention_impl, name=f"block_{i}")
        for i in range(self.num_blocks)]
    self.final_norm = nn.LayerNorm(dtype=self.dtype)
    # BERT's prediction-head transform before the dot product with the item table.
    self.head_dense = nn.Dense(self.embed_dim, dtype=self.dtype)
    self.head_norm = nn.LayerNorm(dtype=self.dtype)

  def __call__(self, ids: jax.Array, train: bool = False) -> jax.Array:
    """Output states at every position. ids: [B, L] right-padded (mask tokens count
    as real) -> [B, L, D]. Padded keys are masked; every real position sees all others."""
    lengths = jnp.maximum(layers.sequence_lengths(ids), 1)  # [B]
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    x = self.emb_drop(self.positions(x), deterministic=not train)
    x = x * (ids != layers.PAD_ID)[..., None].astype(x.dtype)
    for block in self.blocks:
      x = block(x, train=train, kv_lengths=lengths)
    x = self.final_norm(x)
    return self.head_norm(nn.gelu(self.head_dense(x)))  # [B, L, D]

  def with_mask_appended(self, history: jax.Array) -> tuple[jax.Array, jax.Array]:
    """history [B, L] -> (ids [B, L] with the mask token after the last real item, its
    position [B]). A full window drops its oldest item first."""
    length = history.shape[1]
    n = layers.sequence_lengths(history)  # [B]
    full = n >= length
    ids = jnp.where(full[:, None], jnp.roll(history, -1, axis=1), history)
    pos = jnp.minimum(n, length - 1)  # [B]
    ids = ids.at[jnp.arange(ids.shape[0]), pos].set(self.mask_id)
    return ids, pos

  def encode(self, history: jax.Array) -> jax.Array:
    """State at a mask token appended after the history. history: [B, L] -> [B, D]."""
    ids, pos = self.with_mask_appended(history)
    hidden = self(ids, train=False)  # [B, L, D]
    return jnp.take_along_axis(hidden, pos[:, None, None], axis=1)[:, 0]

  def item_table(self) -> jax.Array:
    return self.item_embedding.item_table()
