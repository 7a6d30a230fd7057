"""Error bars from per-user ranks: mean ± standard error, and paired A/B differences.

The evaluator saves `<workdir>/ranks_valid.npz` (the best validation evaluation) and
`<workdir>/ranks_test.npz`, each with
  users      int64 [U]  user index
  rank       int32 [U]  0-based rank of the target among the catalogue (pessimistic ties,
                        as in seqrec_jax/metrics.py)
  rank_excl  int32 [U]  the same with the user's history items excluded
  num_items  scalar     catalogue size

One run: the mean of each per-user metric and its standard error std/sqrt(U) (ddof=1).
Two runs: the paired difference A − B over the same users (aligned by `users`; different
user sets are an error), its standard error (of the per-user differences), and a verdict:
"tie" if |diff| < 2 SE, else "A better" / "B better" (every metric here is higher-better).

  python benchmarks/stats.py RUN_DIR [RUN_DIR2] [--split=test] [--metrics=ndcg@10,hr@10]
                             [--excl] [--json=out.json]
  python benchmarks/stats.py --ranks=a.npz [--ranks=b.npz] ...   (npz files directly;
                             a positional argument may also be an .npz file)
  ... --users=FILE           only these users (a .npy array or a text file, one user
                             index per line), e.g. a group of users by history length

Per-user metrics (r = rank): HR@k = [r < k]; NDCG@k = 1/log2(r + 2) if r < k else 0;
MRR@k = 1/(r + 1) if r < k else 0.

From other scripts (plain NumPy, no JAX):
  import stats                                   # with benchmarks/ on sys.path
  a = stats.load_ranks("runs/x")                 # or a path to an .npz file
  stats.summarize(a, ["ndcg@10"])                # {"ndcg@10": {"mean", "se", "users"}}
  stats.paired(a, stats.load_ranks("runs/y"), ["ndcg@10"])
  stats.restrict(a, users)                       # the same run, only those users
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence

import numpy as np

DEFAULT_METRICS = ("ndcg@10", "hr@10")
_METRIC = re.compile(r"^(hr|ndcg|mrr)@([1-9][0-9]*)$")


# ---- loading ------------------------------------------------------------------------------
def ranks_path(source: str, split: str = "test") -> str:
  """`source` itself if it is a file, else `<source>/ranks_<split>.npz`."""
  if os.path.isfile(source):
    return source
  if os.path.isdir(source):
    path = os.path.join(source, f"ranks_{split}.npz")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} does not exist (is {source} a finished run whose "
                              "evaluator saves per-user ranks?)")
    return path
  raise FileNotFoundError(f"{source}: no such run directory or ranks file")


def load_ranks(source: str, split: str = "test") -> dict:
  """{"users", "rank", "rank_excl" (None if absent), "num_items", "path"} from a run or npz."""
  path = ranks_path(source, split)
  with np.load(path) as f:
    for key in ("users", "rank"):
      if key not in f:
        raise ValueError(f"{path}: no array {key!r} (has {sorted(f.files)})")
    out = {"users": np.asarray(f["users"]).astype(np.int64).reshape(-1),
           "rank": np.asarray(f["rank"]).reshape(-1),
           "rank_excl": np.asarray(f["rank_excl"]).reshape(-1) if "rank_excl" in f else None,
           "num_items": int(f["num_items"]) if "num_items" in f else None,
           "path": path}
    for key in ("targets", "target_counts"):  # newer runs: per-user target and its count
      out[key] = np.asarray(f[key]).astype(np.int64).reshape(-1) if key in f else None
  for key in ("rank", "rank_excl"):
    if out[key] is not None and out[key].shape != out["users"].shape:
      raise ValueError(f"{path}: {key} has {out[key].shape[0]} entries, users "
                       f"{out['users'].shape[0]}")
  if np.unique(out["users"]).size != out["users"].size:
    raise ValueError(f"{path}: duplicate user indices")
  return out


def restrict(run: dict, users) -> dict:
  """The run with only the given users (every one of them must be in the run)."""
  users = np.unique(np.asarray(users, np.int64).reshape(-1))
  keep = np.isin(run["users"], users)
  missing = users.size - int(keep.sum())
  if missing:
    raise ValueError(f"{run.get('path', 'ranks')}: {missing} of the {users.size} requested "
                     "users are not in the run")
  out = dict(run)
  for key in ("users", "rank", "rank_excl", "targets", "target_counts"):
    if out.get(key) is not None:
      out[key] = out[key][keep]
  return out


def load_users(path: str) -> np.ndarray:
  """User indices from a .npy file or a text file (one per line, '#' comments)."""
  if path.endswith(".npy"):
    return np.load(path).astype(np.int64).reshape(-1)
  return np.loadtxt(path, dtype=np.int64, comments="#", ndmin=1)


# ---- per-user metrics ---------------------------------------------------------------------
def parse_metric(name: str) -> tuple[str, int]:
  m = _METRIC.match(name.strip().lower())
  if not m:
    raise ValueError(f"unknown metric {name!r} (expected hr@K, ndcg@K or mrr@K)")
  return m.group(1), int(m.group(2))


def per_user(ranks: np.ndarray, metric: str) -> np.ndarray:
  """[U] float64 value of `metric` for each user, from 0-based ranks."""
  kind, k = parse_metric(metric)
  r = np.asarray(ranks, np.float64)
  if np.any(r < 0):
    raise ValueError("ranks must be >= 0")
  hit = r < k
  if kind == "hr":
    return hit.astype(np.float64)
  if kind == "ndcg":
    return np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
  return np.where(hit, 1.0 / (r + 1.0), 0.0)


def mean_se(values: np.ndarray) -> tuple[float, float]:
  """Mean and standard error std(ddof=1)/sqrt(n)."""
  values = np.asarray(values, np.float64)
  n = values.size
  if n < 2:
    raise ValueError(f"a standard error needs at least 2 users, got {n}")
  return float(values.mean()), float(values.std(ddof=1) / math.sqrt(n))


def _rank_array(run: dict, excl: bool) -> np.ndarray:
  key = "rank_excl" if excl else "rank"
  if run.get(key) is None:
    raise ValueError(f"{run.get('path', 'ranks')}: no {key!r} array")
  return run[key]


def _as_run(run) -> dict:
  return load_ranks(run) if isinstance(run, (str, os.PathLike)) else run


# ---- one run, two runs --------------------------------------------------------------------
def summarize(run, metrics: Sequence[str] = DEFAULT_METRICS, excl: bool = False) -> dict:
  """{metric: {"mean", "se", "users"}} for one run (a dict from load_ranks, or a path)."""
  run = _as_run(run)
  ranks = _rank_array(run, excl)
  out = {}
  for metric in metrics:
    mean, se = mean_se(per_user(ranks, metric))
    out[metric] = {"mean": mean, "se": se, "users": int(ranks.size)}
  return out


def align(a: dict, b: dict, excl: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(users, ranks of A, ranks of B) sorted by user; ValueError if the user sets differ."""
  ra, rb = _rank_array(a, excl), _rank_array(b, excl)
  if a.get("num_items") is not None and b.get("num_items") is not None \
      and a["num_items"] != b["num_items"]:
    raise ValueError(f"different catalogues: num_items {a['num_items']} vs {b['num_items']}")
  ia, ib = np.argsort(a["users"], kind="stable"), np.argsort(b["users"], kind="stable")
  ua, ub = a["users"][ia], b["users"][ib]
  if ua.shape != ub.shape or not np.array_equal(ua, ub):
    only_a = np.setdiff1d(ua, ub).size
    only_b = np.setdiff1d(ub, ua).size
    raise ValueError(f"the runs rank different users: {ua.size} vs {ub.size} users, "
                     f"{only_a} only in A, {only_b} only in B; a paired comparison needs "
                     "the same users")
  return ua, ra[ia], rb[ib]


def verdict(diff: float, se: float) -> str:
  if diff == 0 or abs(diff) < 2 * se:
    return "tie"
  return "A better" if diff > 0 else "B better"


def paired(a, b, metrics: Sequence[str] = DEFAULT_METRICS, excl: bool = False) -> dict:
  """{metric: {"a", "b", "diff" (A − B), "se" (of the diff), "verdict", "users"}}."""
  a, b = _as_run(a), _as_run(b)
  _, ra, rb = align(a, b, excl)
  out = {}
  for metric in metrics:
    va, vb = per_user(ra, metric), per_user(rb, metric)
    diff, se = mean_se(va - vb)
    out[metric] = {"a": float(va.mean()), "b": float(vb.mean()), "diff": diff, "se": se,
                   "verdict": verdict(diff, se), "users": int(ra.size)}
  return out


def both_protocols(fn, *runs, metrics: Sequence[str] = DEFAULT_METRICS) -> dict:
  """`fn(*runs, metrics, excl=...)` (summarize or paired) with history items kept and
  excluded, in one dict: {"ndcg@10": ..., "excl/ndcg@10": ...}."""
  return {("excl/" if excl else "") + k: v for excl in (False, True)
          for k, v in fn(*runs, metrics, excl=excl).items()}


def bucket_figures(ranks: dict, base: dict | None, edges) -> dict:
  """Per popularity bucket (cut at `edges`, as the engine's `pop*` metrics): exclude_seen
  NDCG@10 mean ± SE over its users and, with `base` (the id run's ranks), the paired
  difference on the same users. {} for runs without per-user target counts."""
  if ranks.get("target_counts") is None:
    return {}
  from seqrec_jax import metrics as rules  # pylint: disable=import-outside-toplevel
  index = rules.popularity_bucket_index(ranks["target_counts"], edges)
  out = {}
  for b, name in enumerate(rules.bucket_names(edges)):
    users = ranks["users"][index == b]
    if users.size < 2:
      continue
    one = restrict(ranks, users)
    out[name] = summarize(one, ["ndcg@10"], excl=True)["ndcg@10"]
    if base is not None:
      out[name]["vs_id"] = paired(one, restrict(base, users), ["ndcg@10"], excl=True)["ndcg@10"]
  return out


# ---- command line -------------------------------------------------------------------------
def _format_one(name: str, result: dict) -> str:
  lines = [f"{name}", "| metric | mean | SE | users |", "| --- | ---: | ---: | ---: |"]
  for metric, r in result.items():
    lines.append(f"| {metric} | {r['mean']:.4f} | {r['se']:.4f} | {r['users']} |")
  return "\n".join(lines)


def _format_two(name_a: str, name_b: str, result: dict) -> str:
  lines = [f"A = {name_a}", f"B = {name_b}",
           "| metric | A | B | A − B | SE of diff | verdict (tie if abs < 2 SE) | users |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
  for metric, r in result.items():
    lines.append(f"| {metric} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} | "
                 f"{r['se']:.4f} | {r['verdict']} | {r['users']} |")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs", nargs="*", help="run directories (or .npz files), 1 or 2")
  parser.add_argument("--ranks", action="append", default=[],
                      help="an .npz ranks file (repeat for a second run)")
  parser.add_argument("--split", default="test", choices=("test", "valid"))
  parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                      help="comma-separated hr@K, ndcg@K, mrr@K")
  parser.add_argument("--excl", action="store_true",
                      help="use rank_excl (history items excluded)")
  parser.add_argument("--json", default="", help="also write the result to this file")
  parser.add_argument("--users", default="",
                      help="only these users: a .npy array or a text file of user indices")
  args = parser.parse_args(argv)
  sources = list(args.runs) + list(args.ranks)
  if len(sources) not in (1, 2):
    parser.error(f"give one or two runs / ranks files, got {len(sources)}")
  metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
  for m in metrics:
    parse_metric(m)
  try:
    runs = [load_ranks(s, args.split) for s in sources]
    if args.users:
      subset = load_users(args.users)
      runs = [restrict(r, subset) for r in runs]
    if len(runs) == 1:
      result = summarize(runs[0], metrics, args.excl)
      text = _format_one(runs[0]["path"], result)
      report = {"mode": "single", "a": runs[0]["path"], "metrics": result}
    else:
      result = paired(runs[0], runs[1], metrics, args.excl)
      text = _format_two(runs[0]["path"], runs[1]["path"], result)
      report = {"mode": "paired", "a": runs[0]["path"], "b": runs[1]["path"],
                "metrics": result}
  except (ValueError, FileNotFoundError) as e:
    print(f"stats.py: error: {e}", file=sys.stderr)
    raise SystemExit(2) from e
  report.update(split=args.split, excl=args.excl, users_file=args.users or None)
  print(("excluding history items\n" if args.excl else "")
        + (f"users from {args.users}\n" if args.users else "") + text)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == "__main__":
  main()
