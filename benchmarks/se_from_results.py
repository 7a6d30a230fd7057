"""Standard errors of committed metrics, from the aggregate figures in benchmarks/results/.

  python benchmarks/se_from_results.py [FILE.json ...] [--metrics=ndcg@10,hr@10,mrr@10]
                                       [--out=benchmarks/results/se_from_results]

The committed result files hold means over users, not per-user ranks, so the standard
error std/sqrt(U) (ddof=1) of a per-user metric is bounded here, not computed exactly:

- HR@k is 0/1 per user, so its SE is exact: sqrt(p (1 − p) / (U − 1)).
- NDCG@k and MRR@k: the file's HR@k' and NDCG@k' (MRR@k') at the cut-offs k' <= k that
  it holds (1, 5, 10 in the ML-1M run files) split the users into rank bins [0,1), [1,5),
  [5,10) with known counts n_b and known sums s_b of the metric. In a bin the per-user
  value lies in [lo_b, hi_b] (the metric at the bin's last and first rank), so
  s_b² / n_b <= Σ x² <= (lo_b + hi_b) s_b − n_b lo_b hi_b (Jensen; the chord of x²). The
  two ends give a lower and an upper bound on the variance, hence on the SE. With 2,999
  users and these bins the bounds are about 0.0002 apart.

The exact figure, and any paired difference between two runs (which needs per-user
values of both), comes from benchmarks/stats.py on the runs' ranks_{valid,test}.npz.

By default it reads every benchmarks/results/*.json and reports each dict that has
`users`, `hr@k` and `ndcg@k` (the `final.valid` / `final.test` blocks of the training
run files); it writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
from collections.abc import Iterator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")


def _value(kind: str, rank: float) -> float:
  return 1.0 / math.log2(rank + 2.0) if kind == "ndcg" else 1.0 / (rank + 1.0)


def cutoffs(block: dict, kind: str, k: int) -> list[int]:
  """The cut-offs k' <= k with both hr@k' and <kind>@k' in the block, ascending (k last)."""
  ks = set()
  for key in block:
    m = re.fullmatch(r"hr@(\d+)", key)
    if m and int(m.group(1)) <= k and f"{kind}@{m.group(1)}" in block:
      ks.add(int(m.group(1)))
  return sorted(ks)


def se_bounds(block: dict, metric: str) -> dict | None:
  """{"mean", "se_low", "se_high", "exact", "users", "bins"} or None if not derivable."""
  kind, k = metric.split("@")
  k = int(k)
  users = block.get("users")
  if not users or users < 2 or metric not in block or f"hr@{k}" not in block:
    return None
  mean = float(block[metric])
  if kind == "hr":
    se = math.sqrt(max(mean * (1 - mean), 0.0) / (users - 1))
    return {"mean": mean, "se_low": se, "se_high": se, "exact": True, "users": users,
            "bins": [k]}
  ks = cutoffs(block, kind, k)
  if not ks or ks[-1] != k:
    return None
  sq_low = sq_high = 0.0
  prev_k, prev_hr, prev_m = 0, 0.0, 0.0
  for kb in ks:
    n = round(users * (float(block[f"hr@{kb}"]) - prev_hr))  # a count: undo float32 noise
    s = users * (float(block[f"{kind}@{kb}"]) - prev_m)
    if n > 0:
      hi, lo = _value(kind, prev_k), _value(kind, kb - 1)  # ranks prev_k .. kb-1
      s = min(max(s, n * lo), n * hi)
      sq_low += s * s / n
      sq_high += (lo + hi) * s - n * lo * hi
    prev_k, prev_hr, prev_m = kb, float(block[f"hr@{kb}"]), float(block[f"{kind}@{kb}"])
  var = lambda sq: max(sq / users - mean * mean, 0.0) * users / (users - 1)
  return {"mean": mean, "se_low": math.sqrt(var(sq_low) / users),
          "se_high": math.sqrt(var(sq_high) / users), "exact": False, "users": users,
          "bins": ks}


def blocks(data, path: str = "") -> Iterator[tuple[str, dict]]:
  """(json path, dict) for every dict with users, hr@10 and ndcg@10."""
  if isinstance(data, dict):
    if "users" in data and any(re.fullmatch(r"hr@\d+", key) for key in data):
      yield path or "/", data
    for key, value in data.items():
      if key in ("config", "valid_curve"):
        continue
      yield from blocks(value, f"{path}/{key}")
  elif isinstance(data, list):
    for i, value in enumerate(data):
      yield from blocks(value, f"{path}[{i}]")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("files", nargs="*")
  parser.add_argument("--metrics", default="ndcg@10,hr@10,mrr@10")
  parser.add_argument("--out", default=os.path.join(RESULTS, "se_from_results"))
  args = parser.parse_args()
  files = args.files or sorted(glob.glob(os.path.join(RESULTS, "*.json")))
  out_json = os.path.abspath(args.out + ".json")
  metrics = [m.strip().lower() for m in args.metrics.split(",") if m.strip()]
  rows = []
  for file in files:
    if os.path.abspath(file) == out_json:
      continue
    with open(file) as f:
      data = json.load(f)
    for where, block in blocks(data):
      row = {"file": os.path.relpath(file, REPO), "block": where, "users": block["users"]}
      for metric in metrics:
        row[metric] = se_bounds(block, metric)
      if any(row[m] is not None for m in metrics):
        rows.append(row)
  with open(out_json, "w") as f:
    json.dump({"command": "python benchmarks/se_from_results.py", "rows": rows}, f, indent=1)
    f.write("\n")
  lines = ["# Standard errors from the committed aggregate metrics",
           "", "`python benchmarks/se_from_results.py` (method in its docstring). SE of "
           "HR exact (binomial); SE of NDCG/MRR bounded: low–high from the rank bins "
           "the file's cut-offs give. Paired differences need per-user ranks: "
           "`benchmarks/stats.py`.", "",
           "| file | block | users | " + " | ".join(f"{m} | SE {m}" for m in metrics) + " |",
           "| --- | --- | ---: | " + " | ".join("---: | ---:" for _ in metrics) + " |"]
  for row in rows:
    cells = []
    for m in metrics:
      r = row[m]
      if r is None:
        cells += ["", "n/a"]
      elif r["exact"]:
        cells += [f"{r['mean']:.4f}", f"{r['se_low']:.4f}"]
      else:
        cells += [f"{r['mean']:.4f}", f"{r['se_low']:.4f}–{r['se_high']:.4f}"]
    lines.append(f"| `{os.path.basename(row['file'])}` | {row['block']} | {row['users']} | "
                 + " | ".join(cells) + " |")
  with open(args.out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
