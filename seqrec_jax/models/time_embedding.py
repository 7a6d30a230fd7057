"""The embedding of each history item's time features (data/time_features.py), summed
into the item embedding at the input, so attention sees when, not only what."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqrec_jax.data import time_features as tf
from seqrec_jax.models import layers


class TimeEmbedding(nn.Module):
  """features [B, L, F] int ids (0 = padding) -> [B, L, D]: the sum over features of a
  learned table per feature (row 0 stays zero at init and is masked with the item)."""

  names: tuple[str, ...]
  embed_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if features.shape[-1] != len(self.names):
      raise ValueError(f"time features: got {features.shape[-1]} columns for "
                       f"model.time_features={','.join(self.names)!r}")
    out = 0.0
    for j, (name, vocab) in enumerate(zip(self.names, tf.vocab_sizes(self.names))):
      table = self.param(f"{name}_embedding", nn.with_logical_partitioning(
          nn.initializers.normal(0.02), (None, layers.EMBED)), (vocab, self.embed_dim))
      out = out + jnp.take(jnp.asarray(table, self.dtype), features[..., j], axis=0)
    return out


def split_and_embed(module, tokens: jax.Array, embedding: TimeEmbedding | None
                    ) -> tuple[jax.Array, jax.Array | None]:
  """(item ids [B, L], time embedding [B, L, D] or None) of a model's input tokens.

  A model with time features needs them ([B, L, 1 + F] tokens); given bare ids it
  fails with a clear error, except while its parameters are initialised (a dummy
  [1, L] input), so a history without times is never silently scored."""
  ids, features = tf.split_tokens(tokens)
  if embedding is None:
    if features is not None and features.shape[-1]:
      raise ValueError(f"{type(module).__name__}: got time features with the history but "
                       "model.time_features is ''")
    return ids, None
  if features is None:
    if not module.is_initializing():
      raise ValueError(f"{type(module).__name__} was trained with model.time_features="
                       f"{','.join(embedding.names)!r}: its histories need their times "
                       "(tokens [B, L, 1 + F]); this caller passes item ids only")
    features = jnp.zeros(ids.shape + (len(embedding.names),), jnp.int32)
  return ids, embedding(features)
