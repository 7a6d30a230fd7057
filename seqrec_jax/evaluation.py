"""Full-ranking evaluation of any model with the scoring interface.

`evaluate_stage` ranks every user's target against the whole catalogue (with and
without history items), batch by batch on the mesh, and returns the metrics and the
per-user ranks (saved as `ranks_{valid,test}.npz` so every comparison has error bars:
`benchmarks/stats.py`). Used by training, `evaluate`, and `infer.restore` users alike.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from seqrec_jax import metrics, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.models.interfaces import item_scores


def rank_step(params: Any, history: jax.Array, targets: jax.Array, seen: jax.Array, *,
              model: nn.Module, num_items: int) -> dict[str, jax.Array]:
  """Full-catalogue ranks of the targets, with and without history items excluded.
  history/seen: [B, L]; targets: [B] -> {"rank", "rank_excl"}: [B] int32."""
  scores = model.apply({"params": params}, history, method=item_scores).astype(jnp.float32)
  return {"rank": metrics.target_ranks(scores, targets, num_items),
          "rank_excl": metrics.target_ranks(scores, targets, num_items, seen=seen)}


def jit_rank_step(model: nn.Module, num_items: int, params_sh: Any, mesh: Mesh):
  """`rank_step` jitted: params on their shardings, the batch split over `data`."""
  data = parallel.batch_sharding(mesh)
  fn = lambda p, h, t, s: rank_step(p, h, t, s, model=model, num_items=num_items)
  return jax.jit(fn, in_shardings=(params_sh, data, data, data), out_shardings=data)


@dataclasses.dataclass
class StageRanks:
  """Per-user ranks of one evaluation (0-based, pessimistic ties; see metrics.py)."""

  users: np.ndarray  # [U] int64 user index in the dataset
  rank: np.ndarray  # [U] int32
  rank_excl: np.ndarray  # [U] int32, history items excluded
  num_items: int

  def save(self, path: str) -> None:
    """Atomic write of an `.npz` with users, rank, rank_excl, num_items."""
    tmp = path + ".tmp.npz"
    np.savez(tmp, users=self.users, rank=self.rank, rank_excl=self.rank_excl,
             num_items=np.int64(self.num_items))
    os.replace(tmp, path)


def evaluate_stage(rank_fn, params: Any, arrays: pipeline.EvalArrays, batch_size: int,
                   mesh: Mesh, ks, with_ranks: bool = False, num_items: int = 0):
  """Full-ranking metrics of one stage ('excl/' = history items excluded).

  -> metrics dict, or (metrics, StageRanks) with `with_ranks`.
  """
  sharding = parallel.batch_sharding(mesh)
  n = len(arrays)
  ranks, ranks_excl = [], []
  per_proc = batch_size // jax.process_count()
  for start in range(0, n, batch_size):
    rows = np.arange(start, start + batch_size)
    valid = rows < n
    rows = np.where(valid, rows, 0)
    lo = jax.process_index() * per_proc
    local = rows[lo:lo + per_proc]
    batch = parallel.to_global({"h": arrays.history[local], "t": arrays.targets[local],
                                "s": arrays.seen[local]}, sharding)
    out = rank_fn(params, batch["h"], batch["t"], batch["s"])
    if jax.process_count() > 1:
      out = multihost_utils.process_allgather(out, tiled=True)
    ranks.append(np.asarray(out["rank"])[valid])
    ranks_excl.append(np.asarray(out["rank_excl"])[valid])
  rank, rank_excl = np.concatenate(ranks), np.concatenate(ranks_excl)
  result = metrics.summarize(rank, ks)
  result.update({f"excl/{k}": v for k, v in metrics.summarize(rank_excl, ks).items()})
  result["users"] = n
  if not with_ranks:
    return result
  users = np.asarray(arrays.users, np.int64)
  return result, StageRanks(users, rank.astype(np.int32), rank_excl.astype(np.int32), num_items)
