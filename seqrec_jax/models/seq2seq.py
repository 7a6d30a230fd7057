"""Seq2Seq: a Transformer encoder-decoder that generates the next k items.

The encoder reads the history bidirectionally (padding masked); the decoder runs
causal self-attention over `[BOS] + future[:-1]` and cross-attends to the encoder
output, trained with teacher forcing to predict `future` (`data.pipeline.
Seq2SeqExample`). BOS is the special row `num_items + 1` of the shared item table.

Scoring interface: `encode(history) -> [B, D]` is the first decoder state (the
next-item prediction), `item_table() -> [V, D]` (BOS not included), so full-ranking
evaluation is the same as for every other model. Generation interface (see
`infer/generate.py`): `prefill(history, steps)` runs the encoder once and the first
decoder step with a KV cache, `decode_step(tokens, cache)` one more decoder step.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.models import layers
from seqrec_jax.models.base import SequenceModel
from seqrec_jax.models.registry import register_model


@register_model("seq2seq", tasks=("seq2seq",), options={"decoder_blocks": 0})
class Seq2Seq(SequenceModel):
  """`max_len` is the encoder window and also the most decoder positions (steps)."""

  decoder_blocks: int = 0  # 0: same as num_blocks
  num_special_tokens: ClassVar[int] = 1  # the [BOS] token, row num_items + 1

  @property
  def bos_id(self) -> int:
    return self.num_items + 1

  def setup(self):
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim,
                                               num_special=self.num_special_tokens,
                                               dtype=self.dtype)
    self.enc_positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.dec_positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    block = lambda name, cross: layers.TransformerBlock(
        self.num_heads, self.mlp_dim, self.dropout, cross_attention=cross, dtype=self.dtype,
        attention_impl=self.attention_impl, name=name)
    self.encoder = [block(f"encoder_{i}", False) for i in range(self.num_blocks)]
    self.decoder = [block(f"decoder_{i}", True)
                    for i in range(self.decoder_blocks or self.num_blocks)]
    self.enc_norm = nn.LayerNorm(dtype=self.dtype)
    self.dec_norm = nn.LayerNorm(dtype=self.dtype)

  def _scale(self, ids: jax.Array) -> jax.Array:
    return self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)

  def encode_history(self, history: jax.Array, train: bool = False
                     ) -> tuple[jax.Array, jax.Array]:
    """history: [B, L] -> (memory [B, L, D], memory lengths [B], at least 1)."""
    lengths = jnp.maximum(layers.sequence_lengths(history), 1)
    x = self.emb_drop(self.enc_positions(self._scale(history)), deterministic=not train)
    x = x * (history != layers.PAD_ID)[..., None].astype(x.dtype)
    for block in self.encoder:
      x = block(x, train=train, kv_lengths=lengths)
    return self.enc_norm(x), lengths

  def decode(self, dec_inputs: jax.Array, memory: jax.Array, memory_lengths: jax.Array,
             train: bool = False) -> jax.Array:
    """Teacher-forced decoder. dec_inputs: [B, T] ([BOS] + future[:-1]) -> [B, T, D]."""
    x = self.emb_drop(self.dec_positions(self._scale(dec_inputs)), deterministic=not train)
    for block in self.decoder:
      x = block(x, train=train, is_causal=True, memory=memory, memory_lengths=memory_lengths)
    return self.dec_norm(x)

  def bos(self, batch: int) -> jax.Array:
    return jnp.full((batch, 1), self.bos_id, jnp.int32)

  def __call__(self, ids: jax.Array, train: bool = False,
               dec_inputs: jax.Array | None = None) -> jax.Array:
    """Decoder states. ids: [B, L] history; dec_inputs: [B, T] (default: [BOS]) -> [B, T, D]."""
    memory, lengths = self.encode_history(ids, train)
    if dec_inputs is None:
      dec_inputs = self.bos(ids.shape[0])
    return self.decode(dec_inputs, memory, lengths, train)

  def encode(self, history: jax.Array) -> jax.Array:
    """Next-item state: the first decoder step. history: [B, L] -> [B, D]."""
    return self(history, train=False)[:, 0]

  def item_table(self) -> jax.Array:
    return self.item_embedding.item_table()

  # ---- Generation ------------------------------------------------------------------------

  def _check_steps(self, steps: int) -> None:
    if not 1 <= steps <= self.max_len:
      raise ValueError(f"steps={steps} must be in 1..max_len={self.max_len} (decoder positions)")

  def _decode_cached(self, tokens: jax.Array, pos: jax.Array, self_caches: list,
                     cross: list, memory: jax.Array | None,
                     memory_lengths: jax.Array) -> tuple[jax.Array, list, list]:
    x = self.dec_positions(self._scale(tokens[:, None]), pos[:, None])  # [B, 1, D]
    new_self, new_cross = [], []
    for block, sc, cc in zip(self.decoder, self_caches, cross):
      x, c = block(x, train=False, memory=memory, memory_lengths=memory_lengths,
                   cache={"self": sc, "cross": cc}, cache_index=pos)
      new_self.append(c["self"])
      new_cross.append(c["cross"])
    return self.dec_norm(x)[:, 0], new_self, new_cross

  def prefill(self, history: jax.Array, steps: int) -> tuple[jax.Array, dict]:
    """Encoder once, then the BOS step. history: [B, L] -> (state [B, D], cache).

    cache: {"index": [B] next decoder position, "self": per-block decoder KV cache,
    "static": {"cross": per-block projected memory, "memory_lengths": [B]}}; the
    "static" part is the same for every beam of a user.
    """
    self._check_steps(steps)
    batch = history.shape[0]
    memory, lengths = self.encode_history(history)
    empty = [layers.attention_cache(batch, steps, self.num_heads, self.embed_dim, self.dtype)
             for _ in self.decoder]
    pos = jnp.zeros((batch,), jnp.int32)
    state, self_caches, cross = self._decode_cached(
        jnp.full((batch,), self.bos_id, jnp.int32), pos, empty, [{} for _ in self.decoder],
        memory, lengths)
    return state, {"index": pos + 1, "self": self_caches,
                   "static": {"cross": cross, "memory_lengths": lengths}}

  def decode_step(self, tokens: jax.Array, cache: dict) -> tuple[jax.Array, dict]:
    """Feeds `tokens` [B] at `cache["index"]`; -> (next state [B, D], cache)."""
    static = cache["static"]
    pos = cache["index"]
    state, self_caches, _ = self._decode_cached(tokens, pos, cache["self"], static["cross"],
                                                None, static["memory_lengths"])
    return state, {"index": pos + 1, "self": self_caches, "static": static}

  def prefix_state(self, history: jax.Array, generated: jax.Array, count: jax.Array,
                   steps: int) -> jax.Array:
    """Without a cache: encoder and decoder over [BOS] + generated[:count], recomputed
    in full. generated: [B, T] -> state at decoder position `count` [B, D]."""
    self._check_steps(steps)
    dec_inputs = jnp.concatenate([self.bos(history.shape[0]), generated[:, :-1]], axis=1)
    hidden = self(history, train=False, dec_inputs=dec_inputs)  # [B, T, D]
    return jnp.take(hidden, count, axis=1)
