"""GAN modules over item sequences: a Generator (any sequence model plus a noise input)
and a Discriminator (Transformer classifier over history ⊕ continuation -> P(real)).

Generator: wraps any model of the project that has the scoring interface
(`encode(history) -> [B, D]`, `item_table() -> [V, D]`). Its own `encode` / `item_table`
are the base model's (noise-free), so it ranks, trains with MLE and checkpoints like the
base model; `noisy_encode(history, z)` mixes a noise vector z into the user state and is
what the adversarial phase samples from. The noise projection starts at zero, so the
adversarial phase starts from exactly the (pre-trained) base model.

Discriminator: own item table, learned positions and Transformer blocks. The history
(right-padded) and the continuation (ids, or one-hot rows for Gumbel-softmax) are
packed left into one sequence. Two heads:
  * "cls": bidirectional encoder with a CLS token and history/continuation segment
    embeddings; logit = w · h_CLS + b.
  * "dot": causal encoder; the logit of continuation item k is h_{before k} · e_k, the
    sequence logit their mean. With one item this is sigma(encode(history) · e_item),
    so the "dot" discriminator is itself a recommender (ELECRec): it has the scoring
    interface and ranks items by how likely it thinks each is the real next item.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.models import layers
from seqrec_jax.models.base import compute_dtype

Dtype = Any
NOISE_MODES = ("add", "concat")
HEADS = ("cls", "dot")


class Generator(nn.Module):
  """A sequence model plus a noise input on its user state.

  noise_mode "add": s' = s + W z (W starts at 0). "concat": s' = W [s; z] + b with W
  starting as [I; 0]. `baseline(state)` is the learned REINFORCE baseline (a linear
  value head on the stopped-gradient state; it never changes the generator itself).
  """

  base: nn.Module
  features: int  # D of the base model's user state
  noise_dim: int = 16
  noise_mode: str = "add"

  def setup(self):
    if self.noise_mode == "add":
      self.noise = nn.Dense(self.features, use_bias=False, kernel_init=nn.initializers.zeros)
    elif self.noise_mode == "concat":
      d, z = self.features, self.noise_dim
      init = lambda key, shape, dtype=jnp.float32: jnp.concatenate(
          [jnp.eye(d, dtype=dtype), jnp.zeros((z, d), dtype)], axis=0)  # [D+Z, D]
      self.noise = nn.Dense(self.features, kernel_init=init)
    else:
      raise ValueError(f"noise_mode={self.noise_mode!r}: expected one of {list(NOISE_MODES)}")
    self.value = nn.Dense(1)

  def __call__(self, ids: jax.Array, train: bool = False) -> jax.Array:
    """The base model's hidden states (noise-free). ids: [B, L] -> [B, L, D]."""
    return self.base(ids, train=train)

  def encode(self, history: jax.Array) -> jax.Array:
    """Noise-free user state (ranking, evaluation). [B, L] -> [B, D]."""
    return self.base.encode(history)

  def item_table(self) -> jax.Array:
    return self.base.item_table()  # [V, D]

  def perturb(self, state: jax.Array, z: jax.Array) -> jax.Array:
    """Mixes noise into user states. state: [..., D]; z: [..., Z] -> [..., D]."""
    state = state.astype(jnp.float32)
    z = jnp.broadcast_to(z.astype(jnp.float32), state.shape[:-1] + z.shape[-1:])
    if self.noise_mode == "add":
      return state + self.noise(z)
    return self.noise(jnp.concatenate([state, z], axis=-1))

  def noisy_encode(self, history: jax.Array, z: jax.Array) -> jax.Array:
    """G(z): user state with noise. history: [B, L]; z: [B, Z] -> [B, D]."""
    return self.perturb(self.encode(history), z)

  def noisy_hidden(self, ids: jax.Array, z: jax.Array) -> jax.Array:
    """Noisy state at every position (causal base models only). -> [B, L, D]."""
    return self.perturb(self(ids, train=False), z[:, None, :])

  def baseline(self, state: jax.Array) -> jax.Array:
    """Learned reward baseline b(state). [..., D] -> [...]."""
    return self.value(jax.lax.stop_gradient(state.astype(jnp.float32)))[..., 0]

  def init_all(self, history: jax.Array) -> jax.Array:
    """Touches every parameter (for `init`): the base model as its loop inits it, the
    noise projection and the baseline head."""
    self.base(history)
    state = self.noisy_encode(history, jnp.zeros((history.shape[0], self.noise_dim)))
    return self.baseline(state) + jnp.sum(self.item_table()[:1])


def _is_soft(tokens: jax.Array) -> bool:
  """True for one-hot / probability rows [..., V] (floating), False for ids (integer)."""
  return jnp.issubdtype(tokens.dtype, jnp.floating)


class Discriminator(nn.Module):
  """Transformer classifier over history ⊕ continuation giving the logit of P(real)."""

  num_items: int
  max_len: int  # longest packed input: history window + continuation
  head: str = "cls"
  embed_dim: int = 64
  num_blocks: int = 1
  num_heads: int = 1
  mlp_dim: int = 128
  dropout: float = 0.1
  dtype: Dtype = jnp.float32
  attention_impl: str | None = None

  def setup(self):
    if self.head not in HEADS:
      raise ValueError(f"head={self.head!r}: expected one of {list(HEADS)}")
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim, dtype=self.dtype)
    self.positions = layers.LearnedPositions(self.max_len + 1, self.embed_dim, dtype=self.dtype)
    self.drop = nn.Dropout(self.dropout)
    self.blocks = [
        layers.TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, dtype=self.dtype,
                                attention_impl=self.attention_impl, name=f"block_{i}")
        for i in range(self.num_blocks)]
    self.final_norm = nn.LayerNorm(dtype=self.dtype)
    if self.head == "cls":
      init = nn.initializers.normal(0.02)
      self.cls_token = self.param("cls_token", init, (self.embed_dim,))
      self.segments = self.param("segments", init, (2, self.embed_dim))  # history, continuation
      self.out = nn.Dense(1)

  # ---- token embeddings ------------------------------------------------------------------
  def _table(self) -> jax.Array:
    return self.item_embedding.item_table()  # [V, D], V = num_items + 1

  def embed(self, tokens: jax.Array) -> jax.Array:
    """Input embeddings of ids [..., T] or one-hot rows [..., T, V] -> [..., T, D]."""
    if _is_soft(tokens):
      x = jnp.einsum("...v,vd->...d", tokens.astype(jnp.float32),
                     self._table().astype(jnp.float32)).astype(self.dtype)
    else:
      x = self.item_embedding(tokens)
    return x * jnp.sqrt(self.embed_dim).astype(self.dtype)

  def output_embedding(self, items: jax.Array) -> jax.Array:
    """Output (scoring) rows of ids [...] or one-hot rows [..., V] -> [..., D] (float32)."""
    table = self._table().astype(jnp.float32)
    if _is_soft(items):
      return jnp.einsum("...v,vd->...d", items.astype(jnp.float32), table)
    return jnp.take(table, items, axis=0)

  def _encode_embedded(self, x: jax.Array, lengths: jax.Array, train: bool) -> jax.Array:
    """Blocks over packed embeddings x: [B, T, D] with `lengths` [B] real tokens."""
    x = self.drop(self.positions(x), deterministic=not train)
    x = x * (jnp.arange(x.shape[1])[None, :] < lengths[:, None])[..., None].astype(x.dtype)
    causal = self.head == "dot"
    for block in self.blocks:
      x = block(x, train=train, is_causal=causal, kv_lengths=None if causal else lengths)
    return self.final_norm(x)

  # ---- "dot" head: the recommender interface --------------------------------------------
  def __call__(self, ids: jax.Array, train: bool = False) -> jax.Array:
    """Causal hidden states over real ids ("dot" head). [B, L] -> [B, L, D]."""
    return self._encode_embedded(self.embed(ids), layers.sequence_lengths(ids), train)

  def encode(self, history: jax.Array) -> jax.Array:
    """State after the last real item; its dot with e_v is the logit that v is real."""
    hidden = self(history)  # [B, L, D]
    last = jnp.maximum(layers.sequence_lengths(history) - 1, 0)  # [B]
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

  def item_table(self) -> jax.Array:
    return self._table()

  def score(self, hidden: jax.Array, items: jax.Array) -> jax.Array:
    """Logits that `items` (ids [...] or one-hots [..., V]) follow states [..., D]."""
    return jnp.sum(hidden.astype(jnp.float32) * self.output_embedding(items), axis=-1)

  # ---- the sequence classifier -----------------------------------------------------------
  def classify(self, history: jax.Array, continuation: jax.Array, cont_weights: jax.Array,
               train: bool = False) -> jax.Array:
    """Logit of P(real) for history ⊕ continuation.

    history: [B, L] right-padded ids; continuation: [B, K] ids or [B, K, V] one-hot
    rows; cont_weights: [B, K] 1 for real continuation slots (a prefix). -> [B].
    """
    batch, length = history.shape
    steps = continuation.shape[1]
    n = layers.sequence_lengths(history)  # [B]
    k_valid = jnp.sum(cont_weights > 0, axis=-1).astype(jnp.int32)  # [B]
    src = jnp.concatenate([self.embed(history), self.embed(continuation)], axis=1)  # [B, L+K, D]
    pos = jnp.arange(length + steps)[None, :]  # [1, L+K]
    index = jnp.where(pos < n[:, None], pos, length + pos - n[:, None])  # [B, L+K]
    index = jnp.clip(index, 0, length + steps - 1)
    packed = jnp.take_along_axis(src, index[..., None], axis=1)  # [B, L+K, D]
    total = n + k_valid  # [B] real tokens after packing
    if self.head == "dot":
      hidden = self._encode_embedded(packed, total, train)  # [B, L+K, D]
      before = jnp.clip(n[:, None] + jnp.arange(steps)[None, :] - 1, 0, length + steps - 1)
      h = jnp.take_along_axis(hidden, before[..., None], axis=1)  # [B, K, D]
      logits = self.score(h, continuation)  # [B, K]
      w = (cont_weights > 0).astype(jnp.float32)
      return jnp.sum(logits * w, axis=-1) / jnp.maximum(jnp.sum(w, axis=-1), 1.0)
    segment = (pos >= n[:, None]).astype(jnp.int32)  # [B, L+K] 0 history, 1 continuation
    packed = packed + jnp.take(self.segments, segment, axis=0).astype(packed.dtype)
    cls = jnp.broadcast_to(self.cls_token.astype(packed.dtype), (batch, 1, self.embed_dim))
    hidden = self._encode_embedded(jnp.concatenate([cls, packed], axis=1), total + 1, train)
    return self.out(hidden[:, 0].astype(jnp.float32))[..., 0]  # [B]

  def init_all(self, history: jax.Array) -> jax.Array:
    """Touches every parameter (for `init`)."""
    cont = history[:, :1]
    out = self.classify(history, cont, jnp.ones(cont.shape, jnp.float32))
    if self.head == "dot":
      out = out + jnp.sum(self.encode(history))
    return out


def build_discriminator(cfg, num_items: int) -> Discriminator:
  """The discriminator of `config.gan` (also the recommender of `gan.recommender=
  "discriminator"` runs: `infer.restore` builds it from a run's config)."""
  g = cfg.gan
  return Discriminator(
      num_items=num_items, max_len=cfg.model.max_len + g.gen_len, head=g.d_head,
      embed_dim=g.d_embed_dim, num_blocks=g.d_num_blocks, num_heads=g.d_num_heads,
      mlp_dim=g.d_mlp_dim, dropout=g.d_dropout, dtype=compute_dtype(cfg.model.dtype),
      attention_impl=cfg.model.attention_impl or None)
