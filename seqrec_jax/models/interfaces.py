"""The interfaces every model states, as Protocols, and the one scorer built on them.

Scoring (every model): `encode(history) -> [B, D]`, `item_table() -> [V, D]`; an
item's score is `state @ table.T`, so evaluation, recommendation, serving and the GAN
work for any model. Generation (autoregressive models): `prefill`, `decode_step`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp


@runtime_checkable
class ScoringModel(Protocol):
  """What evaluation and `recommend` need of a model."""

  def encode(self, history: jax.Array) -> jax.Array:
    """User state after the last real item. history: [B, L] right-padded -> [B, D]."""

  def item_table(self) -> jax.Array:
    """[V, D]: row i scores item i (row 0 = padding, never ranked)."""


@runtime_checkable
class GenerativeModel(ScoringModel, Protocol):
  """What `infer/generate.py` needs to roll a model out with a KV cache."""

  def prefill(self, history: jax.Array, steps: int) -> tuple[jax.Array, Any]:
    """-> (state after the history [B, D], cache for `steps` more items)."""

  def decode_step(self, tokens: jax.Array, cache: Any) -> tuple[jax.Array, Any]:
    """Appends `tokens` [B]; -> (state after them [B, D], updated cache)."""


def item_scores(module: ScoringModel, ids: jax.Array) -> jax.Array:
  """Every item's score for each history, for `model.apply(..., method=item_scores)`.
  ids: [B, L] -> [B, V] float32."""
  return module.encode(ids) @ module.item_table().T.astype(jnp.float32)
