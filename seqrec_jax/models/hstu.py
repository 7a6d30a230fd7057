"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024, "Actions
Speak Louder than Words"; the model of meta-recsys/generative-recommenders).

One layer, for X [B, N, D] (pre-norm, residual):
    U, V, Q, K = split(SiLU(LayerNorm(X) W_uvqk))            W_uvqk: [D, H (2 dv + 2 dqk)]
    A          = SiLU(Q K^T + rab_pos (+ rab_time)) / N  masked causally (no softmax)
    Y          = X + W_o Dropout(U * LayerNorm(A V))          U-gating in place of an FFN
with LayerNorms without scale or bias, `N` the window length (`max_len`; the reference
divides by the padded length), `rab_pos[i, j] = w[j - i + N - 1]` a learned bias per
relative position and, when timestamps are given, `rab_time[i, j] = w_t[bucket(t_{i+1}
- t_j)]` with `bucket(x) = floor(ln(max(|x|, 1)) / 0.301)` clipped to `time_buckets`
(t_{i+1}: the time of the item position i predicts; the last position repeats its own).
Input: item embedding x sqrt(D) + learned position, dropout, padding zeroed. Output:
the user state and the item table are L2-normalised, and the state is divided by
`temperature`, so `state @ table.T` is a cosine / temperature (the reference's
similarity with its 0.05 temperature).

Scoring interface (`encode`, `item_table`); generation recomputes the window at each
step (`prefill` / `decode_step` keep the ids, not a KV cache). Packed rows work as for
SASRec: `segment_ids` restrict attention, `positions` give the relative positions.
Timestamps: `__call__(..., timestamps=[B, L])`; the data pipeline does not feed them
yet (the time-features item of the text/context issue), so training and evaluation use
the relative-position bias.
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


def time_bucket(delta: jax.Array, num_buckets: int) -> jax.Array:
  """The reference's log-scale bucket of a time difference: [...] -> [...] int32 in
  0..num_buckets."""
  x = jnp.log(jnp.maximum(jnp.abs(delta).astype(jnp.float32), 1.0)) / 0.301
  return jnp.clip(jnp.floor(x), 0, num_buckets).astype(jnp.int32)


class RelativeBias(nn.Module):
  """rab_pos (+ rab_time): [B, N, N] attention bias from positions (and times)."""

  max_len: int
  time_buckets: int = 128

  @nn.compact
  def __call__(self, positions: jax.Array, timestamps: jax.Array | None) -> jax.Array:
    init = nn.initializers.normal(stddev=0.02)
    w = self.param("position_bias", init, (2 * self.max_len - 1,))
    rel = positions[:, None, :] - positions[:, :, None]  # [B, N(query i), N(key j)]: j - i
    bias = w[jnp.clip(rel + self.max_len - 1, 0, 2 * self.max_len - 2)]
    if timestamps is not None:
      w_t = self.param("time_bias", init, (self.time_buckets + 1,))
      nxt = jnp.concatenate([timestamps[:, 1:], timestamps[:, -1:]], axis=1)  # t_{i+1}
      bias = bias + w_t[time_bucket(nxt[:, :, None] - timestamps[:, None, :],
                                    self.time_buckets)]
    return bias


class HSTULayer(nn.Module):
  """One HSTU layer (see the module docstring). x: [B, N, D] -> [B, N, D]."""

  num_heads: int
  qk_dim: int  # per head
  v_dim: int  # per head
  max_len: int
  dropout: float
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, bias: jax.Array, train: bool) -> jax.Array:
    h, dqk, dv = self.num_heads, self.qk_dim, self.v_dim
    norm = lambda name: nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False,
                                     dtype=self.dtype, name=name)
    uvqk = nn.Dense(h * (2 * dv + 2 * dqk), use_bias=False, dtype=self.dtype, name="uvqk",
                    kernel_init=nn.with_logical_partitioning(
                        nn.initializers.normal(stddev=0.02), (layers.EMBED, layers.MLP)))(
                            norm("input_norm")(x))
    u, v, q, k = jnp.split(nn.silu(uvqk), [h * dv, 2 * h * dv, 2 * h * dv + h * dqk], axis=-1)
    b, n = x.shape[:2]
    q = q.reshape(b, n, h, dqk)
    k = k.reshape(b, n, h, dqk)
    v = v.reshape(b, n, h, dv)
    scores = jnp.einsum("bihd,bjhd->bhij", q, k) + bias[:, None].astype(q.dtype)
    attn = nn.silu(scores) / self.max_len * mask.astype(q.dtype)  # [B, H, N, N]
    av = jnp.einsum("bhij,bjhd->bihd", attn, v).reshape(b, n, h * dv)
    gated = u * norm("attention_norm")(av)
    gated = nn.Dropout(self.dropout)(gated, deterministic=not train)
    return x + nn.Dense(x.shape[-1], dtype=self.dtype, name="output",
                        kernel_init=nn.with_logical_partitioning(
                            nn.initializers.xavier_uniform(), (layers.MLP, layers.EMBED)))(gated)


def _preset(cfg, movielens: bool) -> None:
  """The reference's ML-1M / Amazon settings: 2 (ML) or 4 (Amazon) layers, 1 head,
  dropout 0.2 (ML) / 0.5 (Amazon)."""
  cfg.model.num_blocks = 2 if movielens else 4
  cfg.model.num_heads = 1
  cfg.model.dropout = 0.2 if movielens else 0.5
  cfg.model.emb_dropout = 0.2 if movielens else 0.5


@register_model("hstu", tasks=("causal",), preset=_preset,
                options={"qk_dim": 0, "v_dim": 0, "temperature": 0.05, "time_buckets": 128})
class HSTU(SequenceModel):
  supports_packing = True
  supports_time_features = True  # model.time_features, summed into the input embedding
  qk_dim: int = 0  # per head; 0: embed_dim // num_heads
  v_dim: int = 0  # per head; 0: embed_dim // num_heads
  temperature: float = 0.05  # scores are cosine / temperature
  time_buckets: int = 128

  def setup(self):
    per_head = self.embed_dim // self.num_heads
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim, dtype=self.dtype)
    self.positions = layers.LearnedPositions(self.max_len, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.time_embedding = self.time_embedding_module()
    self.relative_bias = RelativeBias(self.max_len, self.time_buckets)
    self.hstu_layers = [HSTULayer(self.num_heads, self.qk_dim or per_head, self.v_dim or per_head,
                                  self.max_len, self.dropout, dtype=self.dtype, name=f"layer_{i}")
                        for i in range(self.num_blocks)]

  def __call__(self, ids: jax.Array, train: bool = False, segment_ids: jax.Array | None = None,
               positions: jax.Array | None = None, timestamps: jax.Array | None = None
               ) -> jax.Array:
    """Normalised state / temperature at every position. ids: [B, L] right-padded ->
    [B, L, D] (tokens [B, L, 1 + F] with `time_features`). `segment_ids` / `positions`:
    packed rows; `timestamps` [B, L]: the time bias."""
    ids, when = split_and_embed(self, ids, self.time_embedding)  # [B, L], [B, L, D] | None
    real = ids != layers.PAD_ID  # [B, L]
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(ids.shape[1])[None], ids.shape)
    x = self.item_embedding(ids) * jnp.sqrt(self.embed_dim).astype(self.dtype)
    if when is not None:
      x = x + when
    x = self.emb_drop(self.positions(x, positions), deterministic=not train)
    x = x * real[..., None].astype(x.dtype)
    if segment_ids is None:  # [B, 1, N, N]: query i may read key j
      mask = layers.causal_mask(ids.shape[1]) & layers.padding_mask(ids)
    else:
      mask = layers.segment_mask(segment_ids, causal=True)
    bias = self.relative_bias(positions, timestamps)  # [B, N, N]
    for layer in self.hstu_layers:
      x = layer(x, mask, bias, train)
    return self._normalise(x) / self.temperature

  @staticmethod
  def _normalise(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), -1, keepdims=True), 1e-12))

  def encode(self, history: jax.Array) -> jax.Array:
    """State after the last real item. history: [B, L] (or [B, L, 1 + F]) -> [B, D]."""
    hidden = self(history, train=False)
    last = jnp.maximum(layers.sequence_lengths(split_tokens(history)[0]) - 1, 0)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

  def item_table(self) -> jax.Array:
    """[V, D] L2-normalised item embeddings (row 0, padding, stays 0 in effect)."""
    return self._normalise(self.item_embedding.item_table())

  # ---- Generation (recomputes the window; no KV cache) -------------------------------------

  def prefill(self, history: jax.Array, steps: int) -> tuple[jax.Array, dict]:
    """State after the history's latest `max_len - steps + 1` items, and the window."""
    if not 1 <= steps <= self.max_len:
      raise ValueError(f"steps={steps} must be in 1..max_len={self.max_len}")
    ids = jnp.pad(history, ((0, 0), (0, max(self.max_len - history.shape[1], 0))))
    ids = layers.keep_last(ids[:, :self.max_len], self.max_len - steps + 1)
    return self.encode(ids), {"ids": ids, "index": layers.sequence_lengths(ids)}

  def decode_step(self, tokens: jax.Array, cache: dict) -> tuple[jax.Array, dict]:
    """Appends `tokens` [B] to the window; -> (state after them [B, D], cache)."""
    ids = cache["ids"].at[jnp.arange(tokens.shape[0]), cache["index"]].set(tokens, mode="drop")
    return self.encode(ids), {"ids": ids, "index": cache["index"] + 1}


__all__ = ["HSTU", "HSTULayer", "RelativeBias", "time_bucket"]
