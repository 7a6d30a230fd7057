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

from seqrec_jax import metrics, parallel, sharded_ranking
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import train_item_counts  # noqa: F401  (evaluation's counts)
from seqrec_jax.models.interfaces import item_scores


def _states_and_table(module, ids):
  return module.encode(ids), module.item_table()


def rank_step(params: Any, history: jax.Array, targets: jax.Array, seen: jax.Array, *,
              model: nn.Module, num_items: int, top_k: int = 0,
              features: jax.Array | None = None, mesh: Mesh | None = None
              ) -> dict[str, jax.Array]:
  """Full-catalogue ranks of the targets, with and without history items excluded.
  history/seen: [B, L]; targets: [B] -> {"rank", "rank_excl"}: [B] int32.

  With `top_k` > 0 also each user's top-k list and its intra-list diversity, without and
  with history items: "top", "top_excl" [B, top_k] int32 item ids best first, "ild",
  "ild_excl" [B, top_k] (`metrics.intra_list_distance`, over `features` [V, F] or by
  default the model's item table).

  With a `mesh` whose `model` axis has more than one device, the catalogue is scored
  slice by slice on the devices that hold the table's rows (`sharded_ranking`): the
  same ranks and lists, and no [users, catalogue] array on any device.
  """
  if mesh is not None and mesh.shape.get("model", 1) > 1:  # one slice-wise scoring pass
    states, table = model.apply({"params": params}, history, method=_states_and_table)
    out = sharded_ranking.ranks_and_top_k(states, table, targets, seen, num_items, mesh, top_k)
    tops = {"": out.pop("top", None), "_excl": out.pop("top_excl", None)}
  else:
    scores = model.apply({"params": params}, history, method=item_scores).astype(jnp.float32)
    out = {"rank": metrics.target_ranks(scores, targets, num_items),
           "rank_excl": metrics.target_ranks(scores, targets, num_items, seen=seen)}
    tops = ({suffix: metrics.top_k_items(scores, top_k, num_items, seen=excl)
             for suffix, excl in (("", None), ("_excl", seen))} if top_k else {})
  if top_k:
    if features is None:
      features = model.apply({"params": params}, method=lambda m: m.item_table())
    for suffix, top in tops.items():
      out["top" + suffix] = top
      out["ild" + suffix] = metrics.intra_list_distance(top, features)
  return out


def jit_rank_step(model: nn.Module, num_items: int, params_sh: Any, mesh: Mesh, top_k: int = 0,
                  features: np.ndarray | None = None):
  """`rank_step` jitted: params on their shardings, the batch split over `data`.
  `top_k` > 0 (e.g. max(config.eval.ks)): also the top-k lists that `evaluate_stage`
  turns into coverage, diversity, popularity and novelty; `features`: see rank_step."""
  data = parallel.batch_sharding(mesh)
  k = min(int(top_k), num_items)
  feats = None if features is None else jnp.asarray(features, jnp.float32)
  fn = lambda p, h, t, s: rank_step(p, h, t, s, model=model, num_items=num_items, top_k=k,
                                    features=feats, mesh=mesh)
  return jax.jit(fn, in_shardings=(params_sh, data, data, data), out_shardings=data)


@dataclasses.dataclass
class StageRanks:
  """Per-user ranks of one evaluation (0-based, pessimistic ties; see metrics.py)."""

  users: np.ndarray  # [U] int64 user index in the dataset
  rank: np.ndarray  # [U] int32
  rank_excl: np.ndarray  # [U] int32, history items excluded
  num_items: int
  targets: np.ndarray | None = None  # [U] int64 target item id
  target_counts: np.ndarray | None = None  # [U] int64 the target's training interactions

  def save(self, path: str) -> None:
    """Atomic write of an `.npz` with users, rank, rank_excl, num_items (and targets,
    target_counts when known: per-user long-tail and cold-item figures with errors)."""
    tmp = path + ".tmp.npz"
    extra = {k: getattr(self, k) for k in ("targets", "target_counts")
             if getattr(self, k) is not None}
    np.savez(tmp, users=self.users, rank=self.rank, rank_excl=self.rank_excl,
             num_items=np.int64(self.num_items), **extra)
    os.replace(tmp, path)


def evaluate_stage(rank_fn, params: Any, arrays: pipeline.EvalArrays, batch_size: int,
                   mesh: Mesh, ks, with_ranks: bool = False, num_items: int = 0,
                   item_counts: np.ndarray | None = None,
                   popularity_edges: tuple[int, ...] = (5, 20),
                   cold_items: np.ndarray | None = None):
  """Full-ranking metrics of one stage ('excl/' = history items excluded).

  When `rank_fn` returns top-k lists (`jit_rank_step(..., top_k=K)`), the beyond-
  accuracy metrics of those lists sit next to HR/NDCG/MRR for every k <= K of `ks`:
  coverage@k (share of the catalogue in anyone's top-k; needs `num_items` or
  `item_counts`), diversity@k (mean intra-list cosine distance, k >= 2) and, with
  `item_counts` ([num_items + 1] training counts, `train_item_counts(split)`),
  popularity@k (mean training count of recommended items) and novelty@k (mean
  -log2 popularity share), each also as 'excl/'. With `item_counts`, also the metrics
  by target popularity bucket, cut at `popularity_edges` training interactions
  (`metrics.popularity_buckets`: "pop<=5/ndcg@10", "pop6-20/...", "pop>20/..."). With
  `cold_items` ([num_items + 1] bool, `split.cold`), also "cold/..." over the users whose
  target is a cold item.

  -> metrics dict, or (metrics, StageRanks) with `with_ranks`.
  """
  sharding = parallel.batch_sharding(mesh)
  n = len(arrays)
  collected: dict[str, list] = {}
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
    for key, value in out.items():
      collected.setdefault(key, []).append(np.asarray(value)[valid])
  empty = {"rank": np.zeros(0, np.int32), "rank_excl": np.zeros(0, np.int32)}
  got = {key: np.concatenate(v) for key, v in collected.items()} or empty
  rank, rank_excl = got["rank"], got["rank_excl"]
  result = metrics.summarize(rank, ks)
  result.update({f"excl/{k}": v for k, v in metrics.summarize(rank_excl, ks).items()})
  if "top" in got:
    catalogue = num_items or (0 if item_counts is None else len(item_counts) - 1)
    for prefix, suffix in (("", ""), ("excl/", "_excl")):
      extra = metrics.beyond_accuracy(got["top" + suffix], got.get("ild" + suffix), ks,
                                      catalogue, item_counts, prefix=prefix)
      result.update(extra)
  targets = np.asarray(arrays.targets, np.int64)[:n]  # [U] each user's target item
  target_counts = (None if item_counts is None  # [U] its training interactions
                   else np.asarray(item_counts, np.int64)[targets])
  if cold_items is not None:  # targets that are cold items (never trained on)
    sel = np.asarray(cold_items)[targets]
    result["cold/users"] = int(sel.sum())
    if sel.any():
      for prefix, r in (("cold/", rank), ("excl/cold/", rank_excl)):
        result.update({prefix + k: v for k, v in metrics.summarize(r[sel], ks).items()})
  if target_counts is not None and popularity_edges:  # the long tail, by target popularity
    for prefix, r in (("", rank), ("excl/", rank_excl)):
      result.update(metrics.popularity_buckets(r, target_counts, popularity_edges, ks, prefix))
  result["users"] = n
  if not with_ranks:
    return result
  users = np.asarray(arrays.users, np.int64)
  return result, StageRanks(users, rank.astype(np.int32), rank_excl.astype(np.int32), num_items,
                            targets=targets, target_counts=target_counts)
