"""GRU4Rec: a recurrent network over the item history (Hidasi et al., ICLR 2016), in the
form sequential-recommendation libraries ship it: item embedding -> dropout -> a stack
of `num_blocks` GRU layers of width `embed_dim` -> a dense projection, scored against
the (tied) item table and trained with next-item prediction at every position.

Scoring interface: `encode(history) -> [B, D]` is the output after the last real item,
`item_table() -> [V, D]`. Generation interface: the GRU carries are the cache, so
`prefill` runs the history once and `decode_step` advances every layer by one item.
A recurrent model has no window limit: `max_len` only sets the training window.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.models import layers
from seqrec_jax.models.base import SequenceModel
from seqrec_jax.models.registry import register_model


class GRULayer(nn.Module):
  """One GRU layer: `__call__` runs a whole sequence (a `lax.scan` over time), `step`
  one item; both use the same cell parameters."""

  features: int
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.cell = nn.GRUCell(features=self.features, dtype=self.dtype, param_dtype=jnp.float32)

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, L, D_in] -> outputs (= carries) at every position [B, L, features]."""
    carry = jnp.zeros((x.shape[0], self.features), self.dtype)
    scan = nn.scan(lambda mdl, c, xt: mdl.cell(c, xt), variable_broadcast="params",
                   split_rngs={"params": False})
    _, ys = scan(self, carry, jnp.swapaxes(x, 0, 1))  # over time: [L, B, F]
    return jnp.swapaxes(ys, 0, 1)

  def step(self, carry: jax.Array, x: jax.Array) -> jax.Array:
    """carry [B, F], x [B, D_in] -> the new carry (also the output) [B, F]."""
    carry, _ = self.cell(carry, x)
    return carry


def _preset(cfg, movielens: bool) -> None:
  """GRU4Rec's settings in the dataset presets: one GRU layer, dropout on the input."""
  del movielens
  cfg.model.num_blocks = 1
  cfg.model.dropout = 0.0
  cfg.model.emb_dropout = 0.25


@register_model("gru4rec", tasks=("causal",), preset=_preset)
class GRU4Rec(SequenceModel):

  def setup(self):
    self.item_embedding = layers.ItemEmbedding(self.num_items, self.embed_dim, dtype=self.dtype)
    self.emb_drop = nn.Dropout(self.emb_dropout)
    self.grus = [GRULayer(self.embed_dim, dtype=self.dtype, name=f"gru_{i}")
                 for i in range(self.num_blocks)]
    self.between_drop = nn.Dropout(self.dropout)
    self.out = nn.Dense(self.embed_dim, dtype=self.dtype)

  def _layers(self, x: jax.Array, train: bool) -> list[jax.Array]:
    """Every layer's outputs over a sequence: [B, L, D] each (the last is the top)."""
    outs = []
    for i, gru in enumerate(self.grus):
      if i:
        x = self.between_drop(x, deterministic=not train)
      x = gru(x)
      outs.append(x)
    return outs

  def __call__(self, ids: jax.Array, train: bool = False) -> jax.Array:
    """State at every position. ids: [B, L] right-padded -> [B, L, D]; position t has
    read items 0..t only (causal by construction)."""
    x = self.emb_drop(self.item_embedding(ids), deterministic=not train)
    return self.out(self._layers(x, train)[-1])

  def encode(self, history: jax.Array) -> jax.Array:
    """Output after the last real item. history: [B, L] -> [B, D]."""
    hidden = self(history, train=False)  # [B, L, D]
    last = jnp.maximum(layers.sequence_lengths(history) - 1, 0)  # [B]
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]

  def item_table(self) -> jax.Array:
    return self.item_embedding.item_table()

  # ---- Generation ------------------------------------------------------------------------

  def prefill(self, history: jax.Array, steps: int) -> tuple[jax.Array, dict]:
    """State after the history and the cache (every layer's carry there). `steps` is
    unused: a recurrent cache does not grow. history: [B, L] -> ([B, D], cache)."""
    del steps
    outs = self._layers(self.item_embedding(history), train=False)
    last = jnp.maximum(layers.sequence_lengths(history) - 1, 0)[:, None, None]  # [B, 1, 1]
    empty = (layers.sequence_lengths(history) == 0)[:, None]  # [B, 1]: start from zeros
    carries = [jnp.where(empty, 0.0, jnp.take_along_axis(o, last, axis=1)[:, 0]).astype(o.dtype)
               for o in outs]
    return self.out(outs[-1][jnp.arange(history.shape[0]), last[:, 0, 0]]), {"layers": carries}

  def decode_step(self, tokens: jax.Array, cache: dict) -> tuple[jax.Array, dict]:
    """Appends `tokens` [B]; -> (state after them [B, D], cache)."""
    x = self.item_embedding(tokens)  # [B, D]
    new = []
    for gru, carry in zip(self.grus, cache["layers"]):
      x = gru.step(carry, x)
      new.append(x)
    return self.out(x), {"layers": new}

  def prefix_state(self, history: jax.Array, generated: jax.Array, count: jax.Array,
                   steps: int) -> jax.Array:
    """Without a cache: the state after the history plus the first `count` of
    `generated` [B, T], recomputed over the whole prefix. -> [B, D]."""
    del steps
    ids = jnp.pad(history, ((0, 0), (0, generated.shape[1])))  # [B, L + T]
    lengths = layers.sequence_lengths(history)
    t = jnp.arange(generated.shape[1])[None]  # [1, T]
    values = jnp.where(t < count, generated, layers.PAD_ID)
    ids = ids.at[jnp.arange(ids.shape[0])[:, None], lengths[:, None] + t].set(values, mode="drop")
    return self.encode(ids)
