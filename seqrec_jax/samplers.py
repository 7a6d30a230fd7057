"""Negative samplers for sampled losses, registered by name (config `loss.sampler`).

A sampler draws item ids for `shape` positions from 1..V-1 (row 0 of the table is
padding). Add one by writing a function here (or in any module imported before the
loss is built) with `@SAMPLERS.register("name")`.
"""

from __future__ import annotations

import jax

from seqrec_jax.registry import Registry

SAMPLERS: Registry = Registry("sampler")


@SAMPLERS.register("uniform")
def uniform(rng: jax.Array, shape: tuple[int, ...], vocab: int) -> jax.Array:
  """Items drawn uniformly from 1..vocab-1. -> int32 `shape`."""
  return jax.random.randint(rng, shape, 1, vocab)
