"""Full-catalogue ranking with the item table split over the `model` mesh axis.

Each device scores only its slice of the catalogue for its rows of users; the rank of
the target is the sum over slices of "items scoring >= the target" (one `psum`), and a
top-k list is the top-k of the slices' own top-k lists (an all-gather of k per slice).
So no device ever holds a [users, catalogue] array, and the results equal
`metrics.target_ranks` / `metrics.top_k_items` on one device (same tie rules: ranks
are pessimistic, top-k takes the lowest id among equal scores).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P


def _pad_rows(table: jax.Array, multiple: int) -> jax.Array:
  pad = -table.shape[0] % multiple
  return jnp.pad(table, ((0, pad), (0, 0))) if pad else table


def _local_scores(states, table_slice, num_items, seen, axis: str):
  """This device's [b, v] scores with unrankable columns at -inf, and its column ids."""
  v = table_slice.shape[0]
  offset = jax.lax.axis_index(axis) * v
  cols = offset + jnp.arange(v)  # [v] global item ids of this slice
  scores = jnp.dot(states.astype(jnp.float32), table_slice.astype(jnp.float32).T)  # [b, v]
  rankable = (cols >= 1) & (cols <= num_items)
  rankable = jnp.broadcast_to(rankable[None], scores.shape)
  if seen is not None:  # [b, S] ids -> this slice's columns (others dropped: index v)
    local_ids = jnp.where((seen >= offset) & (seen < offset + v), seen - offset, v)
    rows = jnp.arange(seen.shape[0])[:, None]
    rankable = rankable & ~jnp.zeros(scores.shape, jnp.bool_).at[rows, local_ids].set(
        True, mode="drop")
  return scores, cols, rankable


def target_ranks(states: jax.Array, table: jax.Array, targets: jax.Array, num_items: int,
                 mesh: Mesh, seen: jax.Array | None = None, axis: str = "model") -> jax.Array:
  """[B] int32 ranks of `targets` [B] among items 1..num_items, scores `states` [B, D] @
  `table` [V, D].T computed slice by slice (see module doc); `seen` [B, S] excluded."""
  table = _pad_rows(table, mesh.shape[axis])

  def local(st, tab, tgt, sn):
    scores, cols, rankable = _local_scores(st, tab, num_items, sn, axis)
    own = cols[None, :] == tgt[:, None]  # [b, v]: the target's column, on one slice only
    target_score = jax.lax.psum(jnp.sum(jnp.where(own, scores, 0.0), axis=1), axis)  # [b]
    above = rankable & ~own & (scores >= target_score[:, None])
    return jax.lax.psum(jnp.sum(above, axis=1), axis).astype(jnp.int32)

  seen_arg = jnp.zeros((states.shape[0], 1), jnp.int32) if seen is None else seen
  fn = jax.shard_map(local, mesh=mesh,
                     in_specs=(P("data", None), P(axis, None), P("data"), P("data", None)),
                     out_specs=P("data"))
  return fn(states, table, targets, seen_arg)


def top_k_items(states: jax.Array, table: jax.Array, k: int, num_items: int, mesh: Mesh,
                seen: jax.Array | None = None, axis: str = "model") -> jax.Array:
  """[B, k] int32 the k best-scoring items in 1..num_items (excluding `seen`), merged
  from each slice's own top-k."""
  table = _pad_rows(table, mesh.shape[axis])
  kk = min(k, table.shape[0] // mesh.shape[axis])

  def local(st, tab, sn):
    scores, cols, rankable = _local_scores(st, tab, num_items, sn, axis)
    vals, idx = jax.lax.top_k(jnp.where(rankable, scores, -jnp.inf), kk)  # [b, kk]
    vals = jax.lax.all_gather(vals, axis, axis=1, tiled=True)  # [b, m * kk], slice order
    ids = jax.lax.all_gather(cols[idx], axis, axis=1, tiled=True)
    best = jax.lax.top_k(vals, k)[1]  # ties: the earlier slice, i.e. the lower id
    return jnp.take_along_axis(ids, best, axis=1).astype(jnp.int32)

  seen_arg = jnp.zeros((states.shape[0], 1), jnp.int32) if seen is None else seen
  fn = jax.shard_map(local, mesh=mesh,
                     in_specs=(P("data", None), P(axis, None), P("data", None)),
                     out_specs=P("data", None), check_vma=False)  # merged: same on every slice
  return fn(states, table, seen_arg)
