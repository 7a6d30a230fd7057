"""Building blocks shared by every model: item embedding, positions, attention, blocks.

Sequences are packed left and padded right (`0` = padding), so a causal mask alone
keeps real positions from seeing padding and the cuDNN flash kernel can run with
`is_causal` / sequence lengths instead of a dense mask.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
PAD_ID = 0

# Logical axis names used by `nn.with_logical_partitioning`; `parallel.py` maps them
# onto mesh axes.
VOCAB, EMBED, MLP, HEADS, KV = "vocab", "embed", "mlp", "heads", "kv"


def causal_mask(length: int) -> jax.Array:
  """[1, 1, L, L] bool: query t may attend to keys <= t."""
  return jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]


def padding_mask(ids: jax.Array) -> jax.Array:
  """[B, 1, 1, L] bool: keys that are real items."""
  return (ids != PAD_ID)[:, None, None, :]


def sequence_lengths(ids: jax.Array) -> jax.Array:
  """[B] int32: number of real (non-padding) items in each right-padded row."""
  return jnp.sum(ids != PAD_ID, axis=-1).astype(jnp.int32)


class ItemEmbedding(nn.Module):
  """The item table, shared by the input lookup and the output scores.

  Rows: 0 = padding, 1..num_items = items, then `num_special` extra tokens (e.g. the
  BERT4Rec mask token). The table carries logical axes (vocab, embed) so it can be
  sharded over a `model` mesh axis for very large catalogues. Rows past the special
  tokens are alignment padding and are never looked up or scored.
  """

  num_items: int
  features: int
  num_special: int = 0
  vocab_multiple: int = 128  # rows padded up to a multiple, so `model` shards divide them
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def setup(self):
    init = nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), (VOCAB, EMBED))
    rows = self.num_items + 1 + self.num_special
    rows = -(-rows // self.vocab_multiple) * self.vocab_multiple
    self.embedding = self.param("embedding", init, (rows, self.features), self.param_dtype)

  def __call__(self, ids: jax.Array) -> jax.Array:
    x = jnp.take(self.embedding, ids, axis=0)  # [..., D]
    return x.astype(self.dtype)

  def item_table(self) -> jax.Array:
    """[V, D] rows 0..num_items (padding row included, so row i scores item i)."""
    return self.embedding[: self.num_items + 1]


class LearnedPositions(nn.Module):
  """Adds a learned embedding of the position within the window."""

  max_len: int
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:  # x: [B, L, D]
    pos = self.param("pos_embedding",
                     nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, EMBED)),
                     (self.max_len, self.features), self.param_dtype)
    return x + pos[None, : x.shape[1]].astype(self.dtype)


class MultiHeadAttention(nn.Module):
  """Multi-head attention through `jax.nn.dot_product_attention`.

  `implementation` is passed through: None lets JAX pick (XLA), "cudnn" asks for the
  flash kernel on NVIDIA GPUs. With `is_causal` and right padding no dense mask is
  needed; `kv_lengths` masks padded keys for bidirectional use.
  """

  num_heads: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array | None = None, *,
               is_causal: bool = False, kv_lengths: jax.Array | None = None,
               mask: jax.Array | None = None) -> jax.Array:
    features = x.shape[-1]
    head_dim = features // self.num_heads
    context = x if context is None else context
    dense = lambda name: nn.DenseGeneral(
        (self.num_heads, head_dim), dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                 (EMBED, HEADS, KV)), name=name)
    q = dense("query")(x)  # [B, T, N, H]
    k = dense("key")(context)  # [B, S, N, H]
    v = dense("value")(context)  # [B, S, N, H]
    out = jax.nn.dot_product_attention(
        q, k, v, mask=mask, is_causal=is_causal,
        key_value_seq_lengths=kv_lengths, implementation=self.implementation)
    return nn.DenseGeneral(
        features, axis=(-2, -1), dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                 (HEADS, KV, EMBED)), name="out")(out)


class FeedForward(nn.Module):
  """Position-wise MLP (GELU)."""

  hidden: int
  dropout: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    features = x.shape[-1]
    h = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                          (EMBED, MLP)))(x)
    h = nn.gelu(h)
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    return nn.Dense(features, dtype=self.dtype, param_dtype=self.param_dtype,
                    kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                             (MLP, EMBED)))(h)


class TransformerBlock(nn.Module):
  """Pre-LN block: self-attention, optional cross-attention, feed-forward."""

  num_heads: int
  mlp_dim: int
  dropout: float
  cross_attention: bool = False
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, is_causal: bool = False,
               kv_lengths: jax.Array | None = None, mask: jax.Array | None = None,
               memory: jax.Array | None = None,
               memory_lengths: jax.Array | None = None) -> jax.Array:  # x: [B, L, D]
    drop = lambda h: nn.Dropout(self.dropout)(h, deterministic=not train)
    norm = lambda name: nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name=name)
    attn = lambda name: MultiHeadAttention(
        self.num_heads, dtype=self.dtype, param_dtype=self.param_dtype,
        implementation=self.attention_impl, name=name)
    h = attn("self_attention")(norm("ln_attention")(x), is_causal=is_causal,
                               kv_lengths=kv_lengths, mask=mask)
    x = x + drop(h)
    if self.cross_attention:
      h = attn("cross_attention")(norm("ln_cross")(x), memory, kv_lengths=memory_lengths)
      x = x + drop(h)
    h = FeedForward(self.mlp_dim, self.dropout, dtype=self.dtype,
                    param_dtype=self.param_dtype, name="mlp")(norm("ln_mlp")(x), train=train)
    return x + drop(h)
