"""BERT4Rec: a bidirectional Transformer over the history, trained with the cloze task
(Sun et al., 2019).

Training inputs have some items replaced by the mask token (the special row
`num_items + 1` of the item table) and the model predicts the original items there
(`data.pipeline.ClozeExample`). To recommend, `encode(history)` appends the mask
token after the last real item (dropping the oldest item when the window is full)
and returns the hidden state at that position. Same scoring interface as SASRec:
`encode(history) -> [B, D]`, `item_table() -> [V, D]` (mask token not included).

Training extras: packed rows (`segment_ids`, `positions`: attention stays within each
history), `gather` (the masked positions, `task.max_predictions`: the prediction head
and the output layer run on those positions only, as the original implementation does),
and the block stack under `nn.scan` (`scan_layers`) with rematerialisation (`remat`).
"""

from __future__ import annotations

from typing import ClassVar

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


@register_model("bert4rec", tasks=("cloze",), preset=_preset,
                options={"scan_layers": False, "remat": "none"})
class BERT4Rec(SequenceModel):
  supports_packing = True  # __call__ takes segment_ids / positions (train.packing)
  supports_item_text = True  # model.item_repr (models/item_repr.py)
  gathers_positions = True  # __call__ takes gather= (task.max_predictions)
  num_heads: int = 2  # BERT4Rec's own defaults for direct construction
  dropout: float = 0.1
  emb_dropout: float = 0.1
  # The block stack, as in SASRec (nn.scan over stacked params; none | full | dots):
  scan_layers: bool = False
  remat: str = "none"
  num_special_tokens: ClassVar[int] = 1  # the mask token, row num_items + 1

  @property
  def mask_id(self) -> int:
    return self.num_items + 1

  def setup(self):
    self.item_embedding = self.item_table_module(self.num_special_tokens)
    self.positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.blocks = layers.transformer_blocks(
        self.num_blocks, self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
        attention_impl=self.attention_impl, scan=self.scan_layers, remat=self.remat)
    self.final_norm = nn.LayerNorm(dtype=self.dtype)
    # BERT's prediction-head transform before the dot product with the item table.
    self.head_dense = nn.Dense(self.embed_dim, dtype=self.dtype)
    self.head_norm = nn.LayerNorm(dtype=self.dtype)

  def __call__(self, ids: jax.Array, train: bool = False, segment_ids: jax.Array | None = None,
               positions: jax.Array | None = None, gather: jax.Array | None = None
               ) -> jax.Array:
    """Output states at every position. ids: [B, L] right-padded (mask tokens count
    as real) -> [B, L, D]. Padded keys are masked; every real position sees all others.

    Packed rows: `segment_ids` [B, L] (1, 2, ... per history, 0 = padding) keep
    attention within each history, `positions` [B, L] restart at 0 per history.
    `gather` [B, P]: positions whose states to return, picked before the prediction
    head -> [B, P, D]."""
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    x = self.emb_drop(self.positions(x, positions), deterministic=not train)
    x = x * (ids != layers.PAD_ID)[..., None].astype(x.dtype)
    if segment_ids is None:
      lengths = jnp.maximum(layers.sequence_lengths(ids), 1)  # [B]
      x = layers.apply_blocks(self.blocks, x, train=train, remat=self.remat, kv_lengths=lengths)
    else:
      x = layers.apply_blocks(self.blocks, x, train=train, remat=self.remat,
                              mask=layers.segment_mask(segment_ids, causal=False))
    x = self.final_norm(x)
    if gather is not None:
      x = jnp.take_along_axis(x, gather[..., None].astype(jnp.int32), axis=1)  # [B, P, D]
    return self.head_norm(nn.gelu(self.head_dense(x)))  # [B, L or P, D]

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

  def item_table(self, batch_items: jax.Array | None = None) -> jax.Array:
    """[V, D]; `batch_items`: the batch's targets (text_finetune, training)."""
    return self.item_embedding.item_table(batch_items)
