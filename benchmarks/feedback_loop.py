"""Closed-loop simulation: recommend, the real next interactions arrive as feedback, update.

    python benchmarks/feedback_loop.py --dataset=ml1m --rounds=4 --first=0.7 \
        --full_epochs=20 --update_epochs=3 --workdir=runs/loop_ml1m --tag=feedback_loop_ml1m

A time-ordered dataset is cut at global time quantiles: everything before `--first`
of the interactions is the past the first model trains on; the rest arrives in
`--rounds` equal slices. In round r each policy's current model recommends top-10 for
every user who acts in slice r and has a history before it (their whole real history
up to the slice start, history items excluded), scored against the user's first item
in the slice (HR@10, NDCG@10; an item the model does not know is a miss). Then the
slice arrives and each policy reacts:
  * never: keeps the first model;
  * incremental: `seqrec_jax.train.update.update` (new ids, grown tables, fine-tuned
    `--update_epochs` from the previous version's latest state);
  * full: trains from scratch on all data so far for `--full_epochs` (the first
    model's budget), on the same extended dataset the incremental version holds.
Reported per round: each policy's HR@10 / NDCG@10 with standard errors over the round's
users, the paired difference incremental - full with its standard error, the update
wall time of both, and two references that need no model (the most popular items
before the slice, overall and in the last `--recent_days`, history items excluded). Steps already done in `--workdir` are reused (rerun resumes).
"""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
from absl import app, flags

import common
from seqrec_jax import cli, versions
from seqrec_jax.data.dataset import SequenceDataset
from seqrec_jax.data.load import load_dataset
from seqrec_jax.infer.recommend import Recommender
from seqrec_jax.infer.restore import restore
from seqrec_jax.train import engine, mle  # noqa: F401  (mle registers the objective)
from seqrec_jax.train.update import update

_DATASET = flags.DEFINE_string("dataset", "ml1m", "A preset dataset (presets.DATASETS) with "
                               "timestamps, or 'synthetic' (the smoke data, for tests).")
_MODEL = flags.DEFINE_string("model", "sasrec", "Registered model.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Slices after the first part.")
_FIRST = flags.DEFINE_float("first", 0.7, "Fraction of interactions (by time) in the past.")
_FULL_EPOCHS = flags.DEFINE_integer("full_epochs", 20, "Budget of the first model and of "
                                    "each full retrain.")
_UPDATE_EPOCHS = flags.DEFINE_integer("update_epochs", 3, "Budget of each incremental update.")
_UPDATE_WARMUP = flags.DEFINE_integer("update_warmup", 20, "optim.warmup_steps of an update "
                                      "(its Adam moments are warm already).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/feedback_loop", "Where the runs go.")
_TAG = flags.DEFINE_string("tag", "feedback_loop", "Results file stem in benchmarks/results.")
_K = flags.DEFINE_integer("k", 10, "Cut-off of HR / NDCG.")
_RECENT_DAYS = flags.DEFINE_float("recent_days", 30.0, "Window of the recent-popularity "
                                  "baseline.")
_CONFIG = common.define_overrides()


def base_config():
  """The preset (or the smoke config), with the command line's --config.a.b=v applied."""
  if _DATASET.value == "synthetic":
    from seqrec_jax import presets  # pylint: disable=import-outside-toplevel
    cfg = presets.default("smoke")
  else:
    cfg = common.preset_config(_MODEL.value, _DATASET.value)
  cfg = common.with_overrides(cfg, common.overrides(_CONFIG))
  cfg.train.patience = 0  # a fixed budget: the policies' times are comparable
  return cfg


def time_cuts(times: np.ndarray, first: float, rounds: int) -> np.ndarray:
  """[rounds + 1] cut times: the past is `< cuts[0]`, slice r is `[cuts[r-1], cuts[r])`."""
  qs = first + (1.0 - first) * np.arange(rounds + 1) / rounds
  cuts = np.quantile(times, qs[:-1], method="lower").astype(np.int64)
  return np.concatenate([cuts, [int(times.max()) + 1]])


def past_dataset(data: SequenceDataset, cut: int) -> SequenceDataset:
  """The interactions before `cut`, with only the users and items seen by then (raw
  ids kept; dense ids renumbered in order of the full data's)."""
  users = np.repeat(np.arange(data.num_users), data.lengths)
  keep = data.times < cut
  kept_users = np.unique(users[keep])
  kept_items = np.unique(data.items[keep])
  item_index = np.zeros(data.num_items + 1, np.int32)
  item_index[kept_items] = np.arange(1, kept_items.size + 1)
  lengths = np.bincount(users[keep], minlength=data.num_users)[kept_users]
  return SequenceDataset(
      offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
      items=item_index[data.items[keep]], times=data.times[keep],
      user_ids=data.user_ids[kept_users],
      item_ids=np.concatenate([data.item_ids[:1], data.item_ids[kept_items]]),
      report={"past_before": int(cut)})


def slice_events(data: SequenceDataset, lo: int, hi: int) -> list[dict]:
  """The interactions in [lo, hi) as events (raw ids), in time order."""
  users = np.repeat(np.arange(data.num_users), data.lengths)
  idx = np.flatnonzero((data.times >= lo) & (data.times < hi))
  idx = idx[np.argsort(data.times[idx], kind="stable")]
  return [{"user": data.user_ids[users[i]].item(), "item": data.item_ids[data.items[i]].item(),
           "time": int(data.times[i]), "event": "view"} for i in idx]


def round_cases(data: SequenceDataset, lo: int, hi: int) -> list[tuple[list, object]]:
  """(raw history before `lo`, raw first item in [lo, hi)) of each user active in the
  slice with a history before it."""
  cases = []
  for u in range(data.num_users):
    s, e = data.offsets[u], data.offsets[u + 1]
    t, items = data.times[s:e], data.items[s:e]
    before, inside = items[t < lo], items[(t >= lo) & (t < hi)]
    if before.size and inside.size:
      cases.append(([data.item_ids[i].item() for i in before], data.item_ids[inside[0]].item()))
  return cases


def score(rec: Recommender, cases, k: int) -> dict:
  """Per-user hit@k and ndcg@k of `rec` on the round's cases (unknown target: a miss)."""
  histories, targets = [], []
  for history, target in cases:
    dense = [rec.items.get(i) for i in history]
    histories.append(np.asarray([d for d in dense if d is not None], np.int32))
    targets.append(rec.items.get(target) or -1)
  top = rec.dense_topk(histories, k=k, exclude_seen=True)  # [N, k]
  hit_at = top == np.asarray(targets)[:, None]
  pos = np.where(hit_at.any(1), hit_at.argmax(1), -1)
  hit = (pos >= 0).astype(np.float64)
  ndcg = np.where(pos >= 0, 1.0 / np.log2(np.maximum(pos, 0) + 2.0), 0.0)
  return {"hit": hit, "ndcg": ndcg, "unknown_targets": int(sum(t < 0 for t in targets))}


def popularity_scores(data: SequenceDataset, cases, lo: int, k: int,
                      since: int | None = None) -> dict:
  """Reference rows that need no model: the k items with the most interactions before
  `lo` (since `since`, when given), history items excluded, on the round's cases."""
  keep = (data.times < lo) if since is None else ((data.times < lo) & (data.times >= since))
  counts = np.bincount(data.items[keep], minlength=data.num_items + 1)
  counts[0] = -1
  order = np.argsort(-counts, kind="stable")
  index = {data.item_ids[i].item(): i for i in range(1, data.num_items + 1)}
  hit, ndcg = [], []
  for history, target in cases:
    seen = {index[h] for h in history}
    top = [i for i in order[:len(seen) + k + 1] if i not in seen][:k]
    t = index[target]
    pos = top.index(t) if t in top else -1
    hit.append(float(pos >= 0))
    ndcg.append(1.0 / np.log2(pos + 2) if pos >= 0 else 0.0)
  return {"hit": np.asarray(hit), "ndcg": np.asarray(ndcg), "unknown_targets": 0}


def mean_se(x: np.ndarray) -> tuple[float, float]:
  return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0


def train_fresh(cfg, dataset_path: str, workdir: str, epochs: int) -> float:
  """Trains from scratch on a sequences file (reused when finished); -> seconds."""
  if common.read_final(workdir) is None:
    run_cfg = common.with_overrides(cfg, {"data.format": "sequences", "data.root": "",
                                          "data.path": os.path.abspath(dataset_path),
                                          "train.num_epochs": epochs, "train.init_from": ""})
    t0 = time.time()
    engine.run(run_cfg, workdir, "mle")
    with open(os.path.join(workdir, "loop_seconds.json"), "w") as f:
      json.dump({"seconds": time.time() - t0}, f)
  with open(os.path.join(workdir, "loop_seconds.json")) as f:
    return json.load(f)["seconds"]


def recommender(workdir: str) -> Recommender:
  return Recommender.from_restored(restore(workdir), titles={}, k_max=_K.value)


def main(argv):
  del argv
  meta = common.results_meta()  # the code revision this run starts with
  cfg = base_config()
  data = load_dataset(cfg.data)
  cuts = time_cuts(data.times, _FIRST.value, _ROUNDS.value)
  root = os.path.join(_WORKDIR.value, "incremental")  # version 0 = the first model = "never"
  os.makedirs(_WORKDIR.value, exist_ok=True)
  past_path = os.path.join(_WORKDIR.value, "past.npz")
  past = past_dataset(data, int(cuts[0]))
  past.save(past_path)
  t_first = train_fresh(cfg, past_path, root, _FULL_EPOCHS.value)
  rows = []
  full_dir = root  # the full-retrain policy's current model (round 1: the first model)
  inc_dir = root  # the incremental policy's: the version the previous update published
  for r in range(1, _ROUNDS.value + 1):
    lo, hi = int(cuts[r - 1]), int(cuts[r])
    cases = round_cases(data, lo, hi)
    models = {"never": root, "incremental": inc_dir, "full": full_dir}
    result = {"round": r, "slice": [lo, hi], "users": len(cases),
              "versions": {k: os.path.relpath(v, _WORKDIR.value) for k, v in models.items()}}
    per_user = {}
    for policy, path in models.items():
      s = score(recommender(path), cases, _K.value)
      per_user[policy] = s
      hr, hr_se = mean_se(s["hit"])
      nd, nd_se = mean_se(s["ndcg"])
      result[policy] = {"hr": hr, "hr_se": hr_se, "ndcg": nd, "ndcg_se": nd_se,
                        "unknown_targets": s["unknown_targets"]}
    recent = lo - int(_RECENT_DAYS.value * 86400)
    for name, since in (("popular", None), ("popular_recent", recent)):
      s = popularity_scores(data, cases, lo, _K.value, since)
      hr, hr_se = mean_se(s["hit"])
      nd, nd_se = mean_se(s["ndcg"])
      result[name] = {"hr": hr, "hr_se": hr_se, "ndcg": nd, "ndcg_se": nd_se}
    diff = per_user["incremental"]["ndcg"] - per_user["full"]["ndcg"]
    result["inc_minus_full_ndcg"], result["inc_minus_full_ndcg_se"] = mean_se(diff)
    diff = per_user["incremental"]["ndcg"] - per_user["never"]["ndcg"]
    result["inc_minus_never_ndcg"], result["inc_minus_never_ndcg_se"] = mean_se(diff)
    print(f"round {r}: {len(cases)} users | " + " | ".join(
        f"{p} ndcg@{_K.value} {result[p]['ndcg']:.4f}±{result[p]['ndcg_se']:.4f}"
        for p in models), flush=True)
    if r < _ROUNDS.value:  # the slice arrives: update for the next round
      events = os.path.join(_WORKDIR.value, f"events_{r}.jsonl")
      with open(events, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in slice_events(data, lo, hi))
      done = os.path.join(_WORKDIR.value, f"update_{r}.json")
      if not os.path.exists(done):
        t0 = time.time()
        out = update(root, events, epochs=_UPDATE_EPOCHS.value,
                     overrides={"optim.warmup_steps": _UPDATE_WARMUP.value})
        with open(done, "w") as f:
          json.dump({"seconds": time.time() - t0, "version": out["version"],
                     "events": out["events"]}, f, default=str)
      with open(done) as f:
        upd = json.load(f)
      version_dir = os.path.join(versions.versions_dir(root), upd["version"])
      inc_dir = version_dir  # (not versions.latest: a rerun reuses later versions too)
      full_dir = os.path.join(_WORKDIR.value, f"full_{r}")
      t_full = train_fresh(cfg, os.path.join(version_dir, "dataset.npz"), full_dir,
                           _FULL_EPOCHS.value)
      result["after"] = {"incremental_seconds": upd["seconds"], "full_seconds": t_full,
                         "time_ratio": upd["seconds"] / t_full, "new_users":
                         upd["events"]["new_users"], "new_items": upd["events"]["new_items"],
                         "new_interactions": upd["events"]["used"]}
      print(f"  updates: incremental {upd['seconds']:.0f}s, full {t_full:.0f}s "
            f"({upd['seconds'] / t_full:.2f}x)", flush=True)
    rows.append(result)
  out = {**meta, "dataset": _DATASET.value, "model": _MODEL.value,
         "config": cfg.to_dict(), "first": _FIRST.value, "rounds": _ROUNDS.value,
         "full_epochs": _FULL_EPOCHS.value, "update_epochs": _UPDATE_EPOCHS.value,
         "update_warmup": _UPDATE_WARMUP.value,
         "first_model_seconds": t_first, "past": {"users": past.num_users,
                                                  "items": past.num_items,
                                                  "interactions": int(past.items.size)},
         "rows": rows}
  common.write_results(common.RESULTS / _TAG.value, out, markdown(out))
  if os.environ.get("SEQREC_LOOP_CLEANUP"):
    shutil.rmtree(_WORKDIR.value, ignore_errors=True)


def markdown(out: dict) -> str:
  k = _K.value
  lines = [f"Closed loop on {out['dataset']} ({out['model']}): past = first "
           f"{out['first']:.0%} of interactions by time ({out['past']['users']} users, "
           f"{out['past']['items']} items), then {out['rounds']} slices. Full retrain "
           f"{out['full_epochs']} epochs, incremental {out['update_epochs']} epochs. "
           + common.describe(out), "",
           f"| round | users | never NDCG@{k} | incremental NDCG@{k} | full NDCG@{k} | "
           f"inc - full (paired SE) | inc HR@{k} | full HR@{k} | never HR@{k} | "
           f"popular NDCG@{k} | popular last {_RECENT_DAYS.value:g} d NDCG@{k} | "
           "update s (inc / full) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  prev = None
  for row in out["rows"]:
    times = (f"{prev['incremental_seconds']:.0f} / {prev['full_seconds']:.0f} "
             f"({prev['time_ratio']:.2f}x)" if prev else "– (first model)")
    lines.append(
        f"| {row['round']} | {row['users']} | {row['never']['ndcg']:.4f} ± "
        f"{row['never']['ndcg_se']:.4f} | {row['incremental']['ndcg']:.4f} ± "
        f"{row['incremental']['ndcg_se']:.4f} | {row['full']['ndcg']:.4f} ± "
        f"{row['full']['ndcg_se']:.4f} | {row['inc_minus_full_ndcg']:+.4f} ± "
        f"{row['inc_minus_full_ndcg_se']:.4f} | {row['incremental']['hr']:.4f} | "
        f"{row['full']['hr']:.4f} | {row['never']['hr']:.4f} | "
        + (f"{row['popular']['ndcg']:.4f} ± {row['popular']['ndcg_se']:.4f} | "
           f"{row['popular_recent']['ndcg']:.4f} ± {row['popular_recent']['ndcg_se']:.4f}"
           if "popular" in row else "– | –") + f" | {times} |")
    prev = row.get("after")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main)
