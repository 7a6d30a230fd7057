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


def _slice_scores(states, table_slice, axis: str):
  """This device's [b, v] scores, the global item ids of its columns [v] and offset."""
  v = table_slice.shape[0]
  offset = jax.lax.axis_index(axis) * v
  cols = offset + jnp.arange(v)  # [v] global item ids of this slice
  scores = jnp.dot(states.astype(jnp.float32), table_slice.astype(jnp.float32).T)  # [b, v]
  return scores, cols, offset


def _rankable(scores, cols, offset, num_items, seen):
  """[b, v] bool: columns of items 1..num_items, minus this row's `seen` ids if given."""
  v = cols.shape[0]
  rankable = jnp.broadcast_to(((cols >= 1) & (cols <= num_items))[None], scores.shape)
  if seen is not None:  # [b, S] ids -> this slice's columns (others dropped: index v)
    local_ids = jnp.where((seen >= offset) & (seen < offset + v), seen - offset, v)
    rows = jnp.arange(seen.shape[0])[:, None]
    rankable = rankable & ~jnp.zeros(scores.shape, jnp.bool_).at[rows, local_ids].set(
        True, mode="drop")
  return rankable


def _slice_rank(scores, cols, rankable, targets, axis: str):
  """[b] global ranks: per-slice counts of items scoring >= the target, summed."""
  own = cols[None, :] == targets[:, None]  # [b, v]: the target's column, on one slice only
  target_score = jax.lax.psum(jnp.sum(jnp.where(own, scores, 0.0), axis=1), axis)  # [b]
  above = rankable & ~own & (scores >= target_score[:, None])
  return jax.lax.psum(jnp.sum(above, axis=1), axis).astype(jnp.int32)


def _slice_top_k(scores, cols, rankable, k: int, axis: str):
  """[b, k] global top-k: each slice's own top-k, all-gathered, then the top-k of those."""
  kk = min(k, cols.shape[0])
  vals, idx = jax.lax.top_k(jnp.where(rankable, scores, -jnp.inf), kk)  # [b, kk]
  vals = jax.lax.all_gather(vals, axis, axis=1, tiled=True)  # [b, m * kk], slice order
  ids = jax.lax.all_gather(cols[idx], axis, axis=1, tiled=True)
  best = jax.lax.top_k(vals, k)[1]  # ties: the earlier slice, i.e. the lower id
  return jnp.take_along_axis(ids, best, axis=1).astype(jnp.int32)


def ranks_and_top_k(states: jax.Array, table: jax.Array, targets: jax.Array, seen: jax.Array,
                    num_items: int, mesh: Mesh, k: int = 0, axis: str = "model") -> dict:
  """What evaluation needs from one slice-wise scoring pass: "rank" and "rank_excl" [B]
  (with `seen` [B, S] excluded) and, with `k` > 0, "top" and "top_excl" [B, k]."""
  table = _pad_rows(table, mesh.shape[axis])

  def local(st, tab, tgt, sn):
    scores, cols, offset = _slice_scores(st, tab, axis)
    every = _rankable(scores, cols, offset, num_items, None)
    unseen = _rankable(scores, cols, offset, num_items, sn)
    out = {"rank": _slice_rank(scores, cols, every, tgt, axis),
           "rank_excl": _slice_rank(scores, cols, unseen, tgt, axis)}
    if k:
      out["top"] = _slice_top_k(scores, cols, every, k, axis)
      out["top_excl"] = _slice_top_k(scores, cols, unseen, k, axis)
    return out

  specs = {"rank": P("data"), "rank_excl": P("data"), "top": P("data", None),
           "top_excl": P("data", None)}
  fn = jax.shard_map(local, mesh=mesh,
                     in_specs=(P("data", None), P(axis, None), P("data"), P("data", None)),
                     out_specs={key: specs[key] for key in
                                (("rank", "rank_excl", "top", "top_excl") if k
                                 else ("rank", "rank_excl"))},
                     check_vma=False)  # the merged top-k is the same on every slice
  return fn(states, table, targets, seen)


def target_ranks(states: jax.Array, table: jax.Array, targets: jax.Array, num_items: int,
                 mesh: Mesh, seen: jax.Array | None = None, axis: str = "model") -> jax.Array:
  """[B] int32 ranks of `targets` [B] among items 1..num_items, scores `states` [B, D] @
  `table` [V, D].T computed slice by slice (see module doc); `seen` [B, S] excluded."""
  table = _pad_rows(table, mesh.shape[axis])

  def local(st, tab, tgt, sn):
    scores, cols, offset = _slice_scores(st, tab, axis)
    return _slice_rank(scores, cols, _rankable(scores, cols, offset, num_items, sn), tgt, axis)

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

  def local(st, tab, sn):
    scores, cols, offset = _slice_scores(st, tab, axis)
    return _slice_top_k(scores, cols, _rankable(scores, cols, offset, num_items, sn), k, axis)

  seen_arg = jnp.zeros((states.shape[0], 1), jnp.int32) if seen is None else seen
  fn = jax.shard_map(local, mesh=mesh,
                     in_specs=(P("data", None), P(axis, None), P("data", None)),
                     out_specs=P("data", None), check_vma=False)  # merged: same on every slice
  return fn(states, table, seen_arg)
