"""SASRec: a causal Transformer over the item history (Kang & McAuley, 2018).

Scoring interface shared by every model: `encode(history) -> [B, D]` user state after
the last real item, `item_table() -> [V, D]` (row i scores item i; row 0 is padding).

Generation interface (`infer/generate.py`): `prefill(history, steps)` runs the causal
stack once and returns the first state and a KV cache; `decode_step(tokens, cache)`
appends one item per row; `prefix_state` recomputes the same state without a cache.

Training also takes packed rows (`segment_ids`, `positions`: `data/packing.py`), and
the blocks may run under `nn.scan` (`scan_layers`) with rematerialisation (`remat`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.data.time_features import split_tokens
from seqrec_jax.models import layers
from seqrec_jax.models.base import SequenceModel
from seqrec_jax.models.registry import register_model
from seqrec_jax.models.time_embedding import split_and_embed


@register_model("sasrec", tasks=("causal",),
                options={"input_in_state": True, "output_bias": False, "scan_layers": False,
                         "remat": "none"})
class SASRec(SequenceModel):
  supports_packing = True  # __call__ takes segment_ids / positions (train.packing)
  supports_item_text = True  # model.item_repr (models/item_repr.py)
  supports_time_features = True  # model.time_features (models/time_embedding.py)
  # False: the user state is the final norm of what the blocks added to the residual
  # stream, without the last item's own embedding (see `_output_state`).
  input_in_state: bool = True
  # True: a learned per-item score bias (a popularity prior, as in BERT4Rec's output
  # layer). Kept inside the shared scoring interface by appending a constant 1 to every
  # state and the bias as an extra column of the table: scores stay `state @ table.T`.
  output_bias: bool = False
  # True: the blocks run as one nn.scan over stacked params (compiled once whatever the
  # depth; params under `blocks/` with a leading layer axis, not `block_0`, `block_1`,
  # ...: convert with models.layers.stack_block_params).
  scan_layers: bool = False
  # Activation rematerialisation of each block in the backward pass: none | full
  # (recompute everything) | dots (keep the matmul outputs, recompute the rest).
  remat: str = "none"

  def setup(self):
    self.item_embedding = self.item_table_module()
    self.time_embedding = self.time_embedding_module()
    self.positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.blocks = layers.transformer_blocks(
        self.num_blocks, self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
        attention_impl=self.attention_impl, scan=self.scan_layers, remat=self.remat)
    self.final_norm = nn.LayerNorm(dtype=self.dtype)
    if self.output_bias:
      self.item_bias = self.param(
          "item_bias", nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
          (self.num_items + 1,))  # replicated: V floats, and V need not divide a mesh axis

  def __call__(self, ids: jax.Array, train: bool = False, segment_ids: jax.Array | None = None,
               positions: jax.Array | None = None) -> jax.Array:
    """Hidden state at every position. ids: [B, L] right-padded -> [B, L, D]; with
    `time_features`, tokens [B, L, 1 + F] (item, then each feature's id).

    Packed rows: `segment_ids` [B, L] (1, 2, ... per history, 0 = padding) restrict
    attention to earlier positions of the same history, `positions` [B, L] (restarting
    at 0 per history) index the position embedding; each history's states are then
    those of its own unpacked row."""
    ids, when = split_and_embed(self, ids, self.time_embedding)  # [B, L], [B, L, D] | None
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    if when is not None:
      x = x + when
    x = self.emb_drop(self.positions(x, positions), deterministic=not train)
    x = x * (ids != layers.PAD_ID)[..., None].astype(x.dtype)
    x0 = x
    if segment_ids is None:
      x = layers.apply_blocks(self.blocks, x, train=train, remat=self.remat, is_causal=True)
    else:
      x = layers.apply_blocks(self.blocks, x, train=train, remat=self.remat,
                              mask=layers.segment_mask(segment_ids, causal=True))
    return self._output_state(x, x0)

  def _output_state(self, x: jax.Array, x0: jax.Array) -> jax.Array:
    """The final norm of the residual stream x, or (input_in_state=False) of x - x0, so
    the embedding of the item at a position does not pass straight into the score of
    that same item: with tied tables it otherwise ranks near the top as its own next
    item, which never happens in data without repeats (MovieLens). [..., D] -> [..., D]."""
    state = self.final_norm(x if self.input_in_state else x - x0)
    if self.output_bias:  # [..., D + 1]: the constant that picks up the bias column
      state = jnp.concatenate([state, jnp.ones_like(state[..., :1])], axis=-1)
    return state

  def encode(self, history: jax.Array) -> jax.Array:
    """User state after the last real item. history: [B, L] (or [B, L, 1 + F] tokens
    with time features) -> [B, D]."""
    hidden = self(history, train=False)  # [B, L, D]
    last = jnp.maximum(layers.sequence_lengths(split_tokens(history)[0]) - 1, 0)  # [B]
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

  def item_table(self, batch_items: jax.Array | None = None) -> jax.Array:
    """[V, D] (or [V, D + 1] with `output_bias`: the bias as the last column).
    `batch_items`: the batch's targets, for `item_repr="text_finetune"` in training."""
    table = self.item_embedding.item_table(batch_items)
    if self.output_bias:
      table = jnp.concatenate([table, self.item_bias[:, None].astype(table.dtype)], axis=-1)
    return table

  # ---- Generation ------------------------------------------------------------------------

  def _generation_window(self, history: jax.Array, steps: int) -> jax.Array:
    """The latest `max_len - steps + 1` items, so `steps - 1` appended items still fit
    in the learned positions (the cache never has to shift). [B, L <= max_len] ->
    [B, max_len]."""
    if not 1 <= steps <= self.max_len:
      raise ValueError(f"steps={steps} must be in 1..max_len={self.max_len}")
    if history.shape[1] > self.max_len:
      raise ValueError(f"history length {history.shape[1]} > max_len={self.max_len}")
    history = jnp.pad(history, ((0, 0), (0, self.max_len - history.shape[1])))
    return layers.keep_last(history, self.max_len - steps + 1)

  def _embed(self, ids: jax.Array, positions: jax.Array | None = None) -> jax.Array:
    ids, _ = split_and_embed(self, ids, self.time_embedding)  # generation: ids only
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    x = self.positions(x, positions)
    return x * (ids != layers.PAD_ID)[..., None].astype(x.dtype)

  def prefill(self, history: jax.Array, steps: int) -> tuple[jax.Array, dict]:
    """State after the last real item of the generation window, and the KV cache.

    history: [B, L] -> ([B, D], cache); cache["index"] [B] is where the next item goes.
    """
    ids = self._generation_window(history, steps)  # [B, L]
    batch = ids.shape[0]
    x = x0 = self._embed(ids)  # [B, L, D]
    start = jnp.zeros((batch,), jnp.int32)
    empty = layers.empty_block_caches(self.blocks, batch, self.max_len, self.num_heads,
                                      self.embed_dim, self.dtype)
    x, caches = layers.decode_blocks(self.blocks, x, empty, start)
    x = self._output_state(x, x0)  # [B, L, D]
    lengths = layers.sequence_lengths(ids)
    last = jnp.maximum(lengths - 1, 0)
    state = jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]  # [B, D]
    return state, {"index": lengths, "layers": caches}

  def decode_step(self, tokens: jax.Array, cache: dict) -> tuple[jax.Array, dict]:
    """Appends `tokens` [B] at `cache["index"]`; -> (state after them [B, D], cache)."""
    pos = cache["index"]  # [B]
    x = x0 = self._embed(tokens[:, None], pos[:, None])  # [B, 1, D]
    x, new = layers.decode_blocks(self.blocks, x, cache["layers"], pos)
    return self._output_state(x, x0)[:, 0], {"index": pos + 1, "layers": new}

  def prefix_state(self, history: jax.Array, generated: jax.Array, count: jax.Array,
                   steps: int) -> jax.Array:
    """Without a cache: the state after the window plus the first `count` of
    `generated` [B, T], recomputed over the whole prefix. -> [B, D]."""
    ids = self._generation_window(history, steps)
    lengths = layers.sequence_lengths(ids)
    t = jnp.arange(generated.shape[1])[None]  # [1, T]
    values = jnp.where(t < count, generated, layers.PAD_ID)
    ids = ids.at[jnp.arange(ids.shape[0])[:, None], lengths[:, None] + t].set(values, mode="drop")
    return self.encode(ids)
