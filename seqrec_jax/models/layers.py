"""Building blocks shared by every model: item embedding, positions, attention, blocks.

Sequences are packed left and padded right (`0` = padding), so a causal mask alone
keeps real positions from seeing padding and the cuDNN flash kernel can run with
`is_causal` / sequence lengths instead of a dense mask.

Packed rows (`data/packing.py`: several short histories per row) carry `segment_ids`
(1, 2, ... per history, 0 = padding) and `positions` restarting at 0 per history;
`segment_mask` turns them into the block-diagonal (and causal) dense mask, under which
every real position sees exactly what it would see in its own unpacked row.

The block stack (`transformer_blocks`, `apply_blocks`) is either a Python list of
`TransformerBlock`s (params `block_0`, `block_1`, ...) or, with `scan=True`, one
block under `nn.scan` (params stacked on a leading layer axis under `blocks`, compiled
once whatever the depth); `remat` ("none" | "full" | "dots") recomputes activations in
the backward pass. `stack_block_params` / `unstack_block_params` convert between the two
layouts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
PAD_ID = 0

# Logical axis names used by `nn.with_logical_partitioning`; `parallel.py` maps them
# onto mesh axes.
VOCAB, EMBED, MLP, HEADS, KV = "vocab", "embed", "mlp", "heads", "kv"
LAYERS = "layers"  # the leading axis of scanned (stacked) block params; never sharded

# `model.remat`: what the backward pass keeps of a block's activations. "full" keeps
# only the block inputs (everything else is recomputed); "dots" also keeps the outputs
# of matmuls without batch dimensions (the projections), recomputing the rest.
REMAT_POLICIES = {"none": None, "full": None,
                  "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


def resolve_attention_impl(requested: str | None, dtype: Dtype, head_dim: int,
                           backend: str | None = None, has_mask: bool = False) -> str:
  """The attention kernel to use: `requested` if set ("xla" | "cudnn"), else the auto
  choice (config `model.attention_impl=""`): "cudnn" (flash attention) on a GPU for
  bf16/fp16 with a head dim the kernel takes (a multiple of 8, <= 128) and no dense
  mask; "xla" everywhere else (CPU, TPU, float32)."""
  if requested:
    if requested not in ("xla", "cudnn"):
      raise ValueError(f"attention_impl={requested!r}: expected '', 'xla' or 'cudnn'")
    return requested
  backend = jax.default_backend() if backend is None else backend
  half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
  fits = head_dim % 8 == 0 and head_dim <= 128
  return "cudnn" if backend == "gpu" and half and fits and not has_mask else "xla"


def causal_mask(length: int) -> jax.Array:
  """[1, 1, L, L] bool: query t may attend to keys <= t."""
  return jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]


def padding_mask(ids: jax.Array) -> jax.Array:
  """[B, 1, 1, L] bool: keys that are real items."""
  return (ids != PAD_ID)[:, None, None, :]


def segment_mask(segment_ids: jax.Array, causal: bool) -> jax.Array:
  """[B, L] segment ids (0 = padding) -> [B, 1, L, L] bool: query t may attend to key s
  of the same segment (and s <= t when `causal`). Padding attends to padding, so no row
  of the mask is empty."""
  same = segment_ids[:, None, :, None] == segment_ids[:, None, None, :]  # [B, 1, L, L]
  return same & causal_mask(segment_ids.shape[1]) if causal else same


def sequence_lengths(ids: jax.Array) -> jax.Array:
  """[B] int32: number of real (non-padding) items in each right-padded row."""
  return jnp.sum(ids != PAD_ID, axis=-1).astype(jnp.int32)


def keep_last(ids: jax.Array, count: int) -> jax.Array:
  """[B, L] right-padded -> [B, L] holding only each row's last `count` real items,
  still packed left (older items dropped), so `L - count` slots are free."""
  lengths = sequence_lengths(ids)  # [B]
  shift = jnp.maximum(lengths - count, 0)  # [B]
  cols = jnp.arange(ids.shape[1])[None, :] + shift[:, None]  # [B, L]
  kept = jnp.take_along_axis(ids, jnp.minimum(cols, ids.shape[1] - 1), axis=1)
  return jnp.where(jnp.arange(ids.shape[1])[None, :] < jnp.minimum(lengths, count)[:, None],
                   kept, PAD_ID)


def attention_cache(batch: int, length: int, num_heads: int, features: int,
                    dtype: Dtype = jnp.float32) -> dict:
  """An empty self-attention cache {"k", "v"}: [B, S, N, H] zeros."""
  shape = (batch, length, num_heads, features // num_heads)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


class ItemEmbedding(nn.Module):
  """The item table, shared by the input lookup and the output scores.

  Rows: 0 = padding, 1..num_items = items, then `num_special` extra tokens (e.g. the
  BERT4Rec mask token). The table carries logical axes (vocab, embed) so it can be
  sharded over a `model` mesh axis for very large catalogues. Rows past the special
  tokens are alignment padding and are never looked up or scored.
  """

  is_item_lookup: ClassVar[bool] = True  # explanations hook the lookup (infer/explain.py)
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
  def __call__(self, x: jax.Array, positions: jax.Array | None = None) -> jax.Array:
    """x: [B, T, D]. positions: optional [B, T] explicit positions (decoding); by
    default row t gets position t."""
    pos = self.param("pos_embedding",
                     nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, EMBED)),
                     (self.max_len, self.features), self.param_dtype)
    if positions is not None:
      return x + jnp.take(pos, positions, axis=0, mode="clip").astype(self.dtype)  # [B, T, D]
    return x + pos[None, : x.shape[1]].astype(self.dtype)


class MultiHeadAttention(nn.Module):
  """Multi-head attention through `jax.nn.dot_product_attention`.

  `implementation`: "xla", "cudnn" (the flash kernel on NVIDIA GPUs), or None / ""
  for the auto choice of `resolve_attention_impl` (cuDNN for bf16/fp16 on a GPU, XLA
  elsewhere). With `is_causal` and right padding no dense mask is
  needed; `kv_lengths` masks padded keys for bidirectional use.

  Decoding (only when `cache` is given; the call then returns `(out, new_cache)`):
    * self-attention: `cache = {"k", "v"}` of [B, S, N, H] and `cache_index` [B], the
      position of `x[:, 0]` in each row. The new keys/values are written at
      `cache_index + 0..T-1` and each query attends to the cached keys at or before
      its own position.
    * cross-attention (`cache_index` None): keys/values of `context` are computed
      when `context` is given (pass `cache={}`) and returned, else taken from
      `cache`; `kv_lengths` masks padded memory.
  """

  num_heads: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  implementation: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array | None = None, *,
               is_causal: bool = False, kv_lengths: jax.Array | None = None,
               mask: jax.Array | None = None, cache: dict | None = None,
               cache_index: jax.Array | None = None):
    features = x.shape[-1]
    head_dim = features // self.num_heads
    dense = lambda name: nn.DenseGeneral(
        (self.num_heads, head_dim), dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                 (EMBED, HEADS, KV)), name=name)
    out_proj = lambda h: nn.DenseGeneral(
        features, axis=(-2, -1), dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.xavier_uniform(),
                                                 (HEADS, KV, EMBED)), name="out")(h)
    if cache is not None:
      return self._decode(dense, out_proj, x, context, kv_lengths, cache, cache_index)
    context = x if context is None else context
    q = dense("query")(x)  # [B, T, N, H]
    k = dense("key")(context)  # [B, S, N, H]
    v = dense("value")(context)  # [B, S, N, H]
    impl = resolve_attention_impl(self.implementation, q.dtype, head_dim,
                                  has_mask=mask is not None)
    out = jax.nn.dot_product_attention(
        q, k, v, mask=mask, is_causal=is_causal,
        key_value_seq_lengths=kv_lengths, implementation=impl)
    return out_proj(out)

  def _decode(self, dense, out_proj, x, context, kv_lengths, cache, cache_index):
    """The cached path (see the class docstring). -> (out [B, T, D], new cache)."""
    q = dense("query")(x)  # [B, T, N, H]
    if cache_index is not None:  # self-attention over the cache
      batch, steps = x.shape[0], x.shape[1]
      pos = cache_index[:, None] + jnp.arange(steps)[None]  # [B, T]
      rows = jnp.arange(batch)[:, None]  # [B, 1]
      k = cache["k"].at[rows, pos].set(dense("key")(x).astype(cache["k"].dtype), mode="drop")
      v = cache["v"].at[rows, pos].set(dense("value")(x).astype(cache["v"].dtype), mode="drop")
      keys = jnp.arange(k.shape[1])  # [S]
      attend = keys[None, None, None, :] <= pos[:, None, :, None]  # [B, 1, T, S]
      out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask=attend)
      return out_proj(out), {"k": k, "v": v}
    if context is not None:  # cross-attention: project the memory once
      k, v = dense("key")(context), dense("value")(context)  # [B, S, N, H]
    else:
      k, v = cache["k"], cache["v"]
    out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype),
                                       key_value_seq_lengths=kv_lengths)
    return out_proj(out), {"k": k, "v": v}


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
               memory_lengths: jax.Array | None = None, cache: dict | None = None,
               cache_index: jax.Array | None = None):  # x: [B, L, D]
    """-> [B, L, D]; with `cache` (decoding) -> ([B, T, D], new cache).

    Decoding: `cache = {"self": {"k", "v"}}` (see `MultiHeadAttention`), positions
    `cache_index` [B]; with cross-attention also `"cross"`: `{}` to project `memory`
    once, or the `{"k", "v"}` returned by that call (then `memory` may be None).
    """
    drop = lambda h: nn.Dropout(self.dropout)(h, deterministic=not train)
    norm = lambda name: nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name=name)
    attn = lambda name: MultiHeadAttention(
        self.num_heads, dtype=self.dtype, param_dtype=self.param_dtype,
        implementation=self.attention_impl, name=name)
    if cache is not None:
      h, self_cache = attn("self_attention")(norm("ln_attention")(x), cache=cache["self"],
                                             cache_index=cache_index)
      x = x + drop(h)
      new_cache = {"self": self_cache}
      if self.cross_attention:
        h, new_cache["cross"] = attn("cross_attention")(
            norm("ln_cross")(x), memory, kv_lengths=memory_lengths, cache=cache["cross"])
        x = x + drop(h)
      h = FeedForward(self.mlp_dim, self.dropout, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="mlp")(norm("ln_mlp")(x), train=train)
      return x + drop(h), new_cache
    h = attn("self_attention")(norm("ln_attention")(x), is_causal=is_causal,
                               kv_lengths=kv_lengths, mask=mask)
    x = x + drop(h)
    if self.cross_attention:
      h = attn("cross_attention")(norm("ln_cross")(x), memory, kv_lengths=memory_lengths)
      x = x + drop(h)
    h = FeedForward(self.mlp_dim, self.dropout, dtype=self.dtype,
                    param_dtype=self.param_dtype, name="mlp")(norm("ln_mlp")(x), train=train)
    return x + drop(h)


# ---- The block stack: unrolled or scanned ------------------------------------------------


def _check_remat(remat: str) -> None:
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat={remat!r}: expected one of {list(REMAT_POLICIES)}")


def _run_block(block, x, train, is_causal, kv_lengths, mask):
  return block(x, train=train, is_causal=is_causal, kv_lengths=kv_lengths, mask=mask)


def _remat_run(remat: str):
  """`_run_block`, under `nn.remat` with the policy of `remat` ("full" | "dots"): the
  lifted function keeps the block's own param names. `train` and `is_causal` are static."""
  return nn.remat(_run_block, policy=REMAT_POLICIES[remat], static_argnums=(2, 3))


class _ScanLayer(nn.Module):
  """One `TransformerBlock` as an `nn.scan` body: (x, cache, train, is_causal,
  kv_lengths, mask, cache_index) -> (x, new cache or None). Positional arguments only
  (what `nn.scan` / `nn.remat` lift); `train`/`is_causal` are static."""

  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  @nn.compact
  def __call__(self, x, cache, train, is_causal, kv_lengths, mask, cache_index):
    block = TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
                             param_dtype=self.param_dtype, attention_impl=self.attention_impl,
                             name="block")
    if cache is None:
      return block(x, train=train, is_causal=is_causal, kv_lengths=kv_lengths, mask=mask), None
    return block(x, train=train, cache=cache, cache_index=cache_index)


class ScannedBlocks(nn.Module):
  """`num_blocks` TransformerBlocks as one `nn.scan` over a stacked layer axis.

  Params: `layers/block/...` (the names of one `TransformerBlock`) with a leading
  [num_blocks] axis (logical axis `LAYERS`, never
  sharded). Decoding caches are stacked on axis 1 ([B, num_blocks, S, N, H]) so every
  cache leaf still leads with the batch axis (what beam reordering expects).
  """

  num_blocks: int
  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  attention_impl: str | None = None
  remat: str = "none"

  def setup(self):
    _check_remat(self.remat)
    body = _ScanLayer
    if self.remat != "none":
      # static_argnums count `self` as 0: train (3) and is_causal (4) are Python bools.
      body = nn.remat(_ScanLayer, policy=REMAT_POLICIES[self.remat], prevent_cse=False,
                      static_argnums=(3, 4))
    scan = nn.scan(body, variable_axes={"params": 0},
                   split_rngs={"params": True, "dropout": True},
                   in_axes=(1, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast,
                            nn.broadcast),
                   out_axes=1, length=self.num_blocks,
                   metadata_params={nn.PARTITION_NAME: LAYERS})
    self.layers = scan(self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
                       param_dtype=self.param_dtype, attention_impl=self.attention_impl)

  def __call__(self, x: jax.Array, *, train: bool, is_causal: bool = False,
               kv_lengths: jax.Array | None = None, mask: jax.Array | None = None,
               cache: dict | None = None, cache_index: jax.Array | None = None):
    """As `TransformerBlock.__call__` for the whole stack: -> [B, L, D], or with a
    stacked `cache` -> ([B, T, D], new stacked cache)."""
    x, new_cache = self.layers(x, cache, train, is_causal, kv_lengths, mask, cache_index)
    return x if cache is None else (x, new_cache)


def transformer_blocks(num_blocks: int, num_heads: int, mlp_dim: int, dropout: float, *,
                       dtype: Dtype = jnp.float32, attention_impl: str | None = None,
                       scan: bool = False, remat: str = "none"):
  """The block stack of a model, for its `setup`: a list of `block_{i}` blocks, or
  (`scan`) one `ScannedBlocks` named `blocks`. Run it with `apply_blocks`."""
  _check_remat(remat)
  if scan:
    return ScannedBlocks(num_blocks, num_heads, mlp_dim, dropout, dtype=dtype,
                         attention_impl=attention_impl, remat=remat, name="blocks")
  return [TransformerBlock(num_heads, mlp_dim, dropout, dtype=dtype,
                           attention_impl=attention_impl, name=f"block_{i}")
          for i in range(num_blocks)]


def apply_blocks(blocks, x: jax.Array, *, train: bool, remat: str = "none",
                 is_causal: bool = False, kv_lengths: jax.Array | None = None,
                 mask: jax.Array | None = None) -> jax.Array:
  """Runs a `transformer_blocks` stack (no cache): [B, L, D] -> [B, L, D]. `remat`
  applies to an unrolled stack (a scanned one carries its own)."""
  if isinstance(blocks, ScannedBlocks):
    return blocks(x, train=train, is_causal=is_causal, kv_lengths=kv_lengths, mask=mask)
  _check_remat(remat)
  run = _run_block if remat == "none" else _remat_run(remat)
  for block in blocks:
    x = run(block, x, train, is_causal, kv_lengths, mask)
  return x


def empty_block_caches(blocks, batch: int, length: int, num_heads: int, features: int,
                       dtype: Dtype = jnp.float32):
  """Empty self-attention caches for a stack: a list of {"self": {k, v}} per block, or
  (scanned) one {"self": {k, v}} of [B, num_blocks, S, N, H]."""
  if isinstance(blocks, ScannedBlocks):
    one = attention_cache(batch, length, num_heads, features, dtype)
    stacked = jax.tree.map(lambda a: jnp.repeat(a[:, None], blocks.num_blocks, axis=1), one)
    return {"self": stacked}
  return [{"self": attention_cache(batch, length, num_heads, features, dtype)}
          for _ in blocks]


def decode_blocks(blocks, x: jax.Array, caches, cache_index: jax.Array):
  """Runs a stack over cached self-attention (`empty_block_caches` layout).
  -> (x [B, T, D], new caches in the same layout)."""
  if isinstance(blocks, ScannedBlocks):
    return blocks(x, train=False, cache=caches, cache_index=cache_index)
  new = []
  for block, cache in zip(blocks, caches):
    x, cache = block(x, train=False, cache=cache, cache_index=cache_index)
    new.append(cache)
  return x, new


def stack_block_params(params: dict, num_blocks: int, prefix: str = "block_") -> dict:
  """Unrolled params (`block_0` ... `block_{n-1}`) -> the scanned layout
  (`blocks/layers/block`,
  every leaf stacked on a new leading axis). Works on gradients and boxed params too
  (boxed leaves are unboxed). Other entries are kept."""
  params = nn.meta.unbox(params)
  names = [f"{prefix}{i}" for i in range(num_blocks)]
  missing = [n for n in names if n not in params]
  if missing:
    raise KeyError(f"no {missing} in params (keys {sorted(params)})")
  out = {k: v for k, v in params.items() if k not in names}
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[params[n] for n in names])
  out["blocks"] = {"layers": {"block": stacked}}
  return out


def unstack_block_params(params: dict, prefix: str = "block_") -> dict:
  """The inverse of `stack_block_params`: `blocks/layers/block` -> `block_0` ... ."""
  params = dict(nn.meta.unbox(params))
  stacked = params.pop("blocks")["layers"]["block"]
  n = jax.tree.leaves(stacked)[0].shape[0]
  for i in range(n):
    params[f"{prefix}{i}"] = jax.tree.map(lambda a, i=i: a[i], stacked)
  return params
