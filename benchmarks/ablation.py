"""Ablation: one preset trained in several arms that differ by a few config values, each
arm's test figures with standard errors and its paired difference against the first arm.

    python benchmarks/ablation.py --preset=sasrec_ml1m --variant=fast \
        --arms='none:model.time_features=;gap:model.time_features=gap;gap+hour:model.time_features=gap,hour' \
        --config.train.input=grain --tag=time_features_ml1m

An arm is `name:key=value,key=value` (values parsed as `--config.a.b=v` is; a value with
commas, as above, belongs to its key when the next piece has no `=`); arms are separated
by `;`. Every arm is the preset (`presets.get(name, variant)`) plus the shared
`--config.a.b=v` overrides plus its own values, trained by the engine (picked on
validation, tested once). Per arm: test NDCG@10 and HR@10 with exclude_seen off and on,
mean ± SE over users (per-user ranks), the paired difference against the first arm on
the same users, the best epoch and the training time. A finished run is reused (its
revision kept), an unfinished one resumes.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import stats  # noqa: E402

from absl import flags  # noqa: E402

from seqrec_jax import cli, presets  # noqa: E402
from seqrec_jax.train import engine, mle  # noqa: E402,F401  (mle registers the objective)

_PRESET = flags.DEFINE_string("preset", "sasrec_ml1m", "presets.get name: 'default' (the "
                              "built-in synthetic data) or '<model>_<dataset>'")
_VARIANT = flags.DEFINE_string("variant", "", "preset variant, e.g. fast")
_ARMS = flags.DEFINE_string("arms", "", "';'-separated 'name:key=value,key=value' arms")
_TAG = flags.DEFINE_string("tag", "ablation", "results file stem")
_ROOT = flags.DEFINE_string("workdir_root", "runs/ablation", "runs go here")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_CONFIG = common.define_overrides()
KEYS = ("ndcg@10", "hr@10")


def arm_config(values: dict):
  cfg = common.with_overrides(presets.get(_PRESET.value, _VARIANT.value),
                              common.overrides(_CONFIG))
  return common.with_overrides(cfg, common.typed_values(cfg, values))


def run_arm(name: str, values: dict) -> dict:
  cfg = arm_config(values)
  workdir = os.path.join(_ROOT.value, _TAG.value, name)
  final = common.finished_run(cfg, workdir)
  return {"arm": name, "values": values, "workdir": workdir, "git": common.run_git(final),
          "best_epoch": final.get("best_epoch"), "train_seconds": final.get("train_seconds"),
          "valid": {k: final["valid"].get(k) for k in KEYS}, "config": cfg.to_dict()}


def main(argv):
  del argv
  arms = common.parse_arms(_ARMS.value)
  meta = common.results_meta(overrides=common.overrides(_CONFIG), preset=_PRESET.value,
                             variant=_VARIANT.value)
  rows = []
  stem = os.path.join(_OUT.value, _TAG.value)
  base = None  # the first arm's per-user test ranks
  for name, values in arms:
    row = run_arm(name, values)
    ranks = stats.load_ranks(row["workdir"])
    row["test"] = stats.both_protocols(stats.summarize, ranks, metrics=KEYS)
    if base is not None:
      row["vs_first"] = stats.both_protocols(stats.paired, ranks, base, metrics=KEYS)
    row["buckets"] = stats.bucket_figures(ranks, base,
                                          tuple(row["config"]["eval"]["popularity_buckets"]))
    base = ranks if base is None else base
    rows.append(row)
    common.write_results(stem, {**meta, "rows": rows}, markdown({**meta, "rows": rows}))
    print(f"{name}: excl ndcg@10 {row['test']['excl/ndcg@10']['mean']:.4f} ± "
          f"{row['test']['excl/ndcg@10']['se']:.4f}", flush=True)
  print(f"wrote {stem}.md and {stem}.json")


def markdown(out: dict) -> str:
  variant = f":{out['variant']}" if out.get("variant") else ""
  first = out["rows"][0]["arm"]
  lines = [f"Ablation of {out['preset']}{variant}; shared overrides {out['overrides']}. "
           + common.describe(out), "",
           "Test, mean ± SE over users; 'excl': history items removed from the ranking; "
           f"paired differences against arm '{first}' on the same users (a difference under "
           "two SE is a tie).", "",
           "| arm | values | NDCG@10 | excl NDCG@10 | excl HR@10 | excl NDCG@10 vs first "
           "| NDCG@10 vs first | best epoch | train s |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in out["rows"]:
    t = r["test"]
    ms = lambda d: f"{d['mean']:.4f} ± {d['se']:.4f}"

    def vs(key):
      d = r.get("vs_first", {}).get(key)
      return f"{d['diff']:+.4f} ± {d['se']:.4f} ({d['verdict']})" if d else "–"
    values = ", ".join(f"{k}={v!r}" for k, v in r["values"].items())
    lines.append(f"| {r['arm']} | {values} | {ms(t['ndcg@10'])} | {ms(t['excl/ndcg@10'])} | "
                 f"{ms(t['excl/hr@10'])} | {vs('excl/ndcg@10')} | {vs('ndcg@10')} | "
                 f"{r['best_epoch']} | {(r['train_seconds'] or 0):.0f} |")
  buckets = [b for b in out["rows"][0].get("buckets", {})]
  if buckets:
    lines += ["", "Exclude_seen test NDCG@10 by the target's training count (popularity "
              "bucket), mean ± SE (users), and the paired difference against the first arm:",
              "", "| arm | " + " | ".join(buckets) + " |", "|---" * (len(buckets) + 1) + "|"]
    for r in out["rows"]:
      cells = []
      for b in buckets:
        d = r.get("buckets", {}).get(b)
        if d is None:
          cells.append("–")
          continue
        vs = d.get("vs_id")
        rel = f", {vs['diff'] / max(vs['b'], 1e-12):+.0%}" if vs else ""
        cells.append(f"{d['mean']:.4f} ± {d['se']:.4f} (n={d['users']})" +
                     (f"; {vs['diff']:+.4f} ± {vs['se']:.4f}{rel}" if vs else ""))
      lines.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main)
