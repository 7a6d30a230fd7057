"""Today's preset against packing + sampled softmax, in one invocation (issue 16): time per
epoch, time to quality and quality at convergence, with error bars from per-user ranks.

  full: the preset as it is (configs/<model>_<dataset>.py: full-softmax CE, length-grouped
        batches), plus the shared `--config.a.b=v` overrides;
  fast: the preset's "fast" variant (`configs/<model>_<dataset>.py:fast`, presets.FAST:
        packed rows and the logQ-corrected sampled softmax over negatives shared by the
        batch, device-built batches for causal models), plus the shared overrides, then
        `--fast.a.b=v` (fast only). The results list every config field that differs.

Both are engine runs (`train_and_evaluate`, in this process, one after the other), each
to its own early stop or `train.num_epochs`, or to `train.max_train_secs` when set. From
each run's metrics.jsonl:
  epoch s           median training time of an epoch (an epoch-end train record's "wall"
                    minus the previous epoch end's, less the validation in between);
  time to quality   "wall" (from the engine's start: data, setup and every compilation
                    included) of the first validation at or above the full run's best
                    validation value of `eval.select_metric` ("target");
  test              each run's best-on-validation model, tested once by the engine;
                    mean ± SE over users and the paired difference fast − full
                    (benchmarks/stats.py, from ranks_test.npz).

  python benchmarks/fast_training.py --preset=sasrec_toys --workdir_root=runs/fast
  python benchmarks/fast_training.py --preset=sasrec_ml1m --fast.loss.num_negatives=1024
  python benchmarks/fast_training.py --preset=default --variant=smoke --tag=smoke   # seconds

A finished run (final.json) is reused, so the script can be stopped and rerun; its times
are then those of the run as it was made (a resumed run's clock restarts: the results mark it).
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)
import stats  # noqa: E402

from absl import flags  # noqa: E402

from seqrec_jax import cli, config_schema, presets  # noqa: E402
from seqrec_jax.train.loop import train_and_evaluate  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "sasrec_toys", "presets.get name: '<model>_<dataset>' "
                              "or 'default'")
_VARIANT = flags.DEFINE_string("variant", "", "preset variant, e.g. smoke")
_WORKDIR_ROOT = flags.DEFINE_string("workdir_root", "/tmp/seqrec_fast", "runs go here")
_TAG = flags.DEFINE_string("tag", "", "results name suffix (default: the preset)")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_ONLY = flags.DEFINE_enum("only", "", ["", "full", "fast"], "train one variant only (the other "
                          "is read if finished)")
_CONFIG = common.define_overrides("config", "--config.a.b=v: applied to both runs")
_FAST = common.define_overrides("fast", "--fast.a.b=v: applied to the fast run only")


def variant_configs() -> dict:
  """{"full": cfg, "fast": cfg}."""
  shared = common.overrides(_CONFIG)
  full = common.with_overrides(presets.get(_PRESET.value, _VARIANT.value), shared)
  fast_variant = ",".join(filter(None, ["fast", _VARIANT.value]))
  fast = common.with_overrides(presets.get(_PRESET.value, fast_variant),
                               {**shared, **common.overrides(_FAST)})
  return {"full": full, "fast": fast}


def config_diff(a, b) -> dict:
  """{field: [a's value, b's value]} for every config leaf that differs."""
  fa, fb = config_schema.leaves(a), config_schema.leaves(b)
  return {k: [fa.get(k), fb.get(k)] for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def epoch_seconds(records: list[dict]) -> list[float]:
  """Training seconds of each epoch: epoch-end wall differences, less the validations."""
  out, last_end, valid_time = [], None, 0.0
  prev_wall = None
  for r in records:  # the engine's epoch-end train records carry "epoch"
    if r.get("kind") == "train" and "epoch" in r:
      if last_end is not None:
        out.append(r["wall"] - last_end - valid_time)
      last_end, valid_time = r["wall"], 0.0
    elif r.get("kind") == "valid" and last_end is not None and prev_wall is not None:
      valid_time += r["wall"] - prev_wall
    if "wall" in r:
      prev_wall = r["wall"]
  return out


def curve(records: list[dict], key: str) -> list[dict]:
  return [{"epoch": r["epoch"], "step": r["step"], "wall": r["wall"], key: r[key]}
          for r in records if r.get("kind") == "valid" and key in r]


def first_at(points: list[dict], key: str, target: float) -> dict | None:
  return next((p for p in points if p[key] >= target), None)


def run_variant(name: str, cfg) -> dict:
  workdir = os.path.join(_WORKDIR_ROOT.value, _TAG.value or _PRESET.value, name)
  report = common.read_final(workdir)
  if report is None and _ONLY.value in ("", name):
    print(f"== {name} ({workdir})", flush=True)
    report = train_and_evaluate(cfg, workdir)
  if report is None or "test" not in report:
    return {"workdir": workdir, "finished": False}
  return {"workdir": workdir, "finished": True, "report": report}


def summarize(name: str, run: dict, cfg, key: str) -> dict:
  records = common.read_metrics(run["workdir"])
  report = run["report"]
  epochs = epoch_seconds(records)
  return {"variant": name, "workdir": run["workdir"], "git": common.run_git(report),
          "resumed_from": report.get("resumed_from", 0),
          "loss": cfg.loss.name, "num_negatives": cfg.loss.num_negatives if cfg.loss.name != "ce"
          else None, "packing": bool(cfg.train.packing),
          "length_grouping": cfg.train.length_grouping, "batch_size": cfg.train.batch_size,
          "lr": cfg.optim.lr, "num_epochs": cfg.train.num_epochs,
          "epochs_run": max((r["epoch"] for r in records if r.get("kind") == "train"
                             and "epoch" in r), default=0),
          "epoch_seconds_median": statistics.median(epochs) if epochs else None,
          "epoch_seconds": epochs, "valid_curve": curve(records, key),
          "best_epoch": report["best_epoch"], "best_valid": report["valid"][key],
          "wall_seconds": report.get("wall_seconds"), "train_seconds": report.get("train_seconds"),
          "test": {k: report["test"][k] for k in ("ndcg@10", "hr@10") if k in report["test"]}}


def _secs(seconds, epoch) -> str:
  return "not reached" if seconds is None else f"{seconds:.0f} ({epoch})"


_VERDICT = {"tie": "tie: under 2 SE", "A better": "fast better", "B better": "full better"}


def markdown(result: dict) -> str:
  key, rows = result["metric"], result["rows"]
  lines = [f"# Full softmax vs packing + sampled softmax: {result['preset']}", "",
           common.describe(result), "",
           "Config fields that differ (full → fast): " + ", ".join(
               f"`{k}` {a!r} → {b!r}" for k, (a, b) in result["full_vs_fast"].items()) + ".", "",
           f"Target: the full run's best validation {key} = {result['target']:.4f} "
           f"(its standard error over users: {result['target_se']:.4f}; \"within 1 SE\": the "
           f"first validation at or above {result['target'] - result['target_se']:.4f}). "
           "Times are wall seconds from the engine's start (data, setup, compilation and "
           "validations included).", "",
           f"| variant | loss | epoch s (median) | epochs run (best) | best valid {key} | "
           f"s to target | s to within 1 SE (epoch) | wall s | test NDCG@10 ± SE | "
           f"test HR@10 ± SE | run's revision |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
  for r in rows:
    se = r["test_se"]
    reach = r["seconds_to_target"]
    lines.append(
        f"| {r['variant']} | {r['loss']}{f' ({r['num_negatives']} neg.)' if r['num_negatives'] else ''}"
        f"{' + packing' if r['packing'] else ''} | {r['epoch_seconds_median'] or float('nan'):.2f} | "
        f"{r['epochs_run']} ({r['best_epoch']}) | {r['best_valid']:.4f} | "
        f"{f'{reach:.0f}' if reach is not None else 'not reached'} | "
        f"{_secs(r['seconds_to_target_1se'], r['epoch_to_target_1se'])} | {r['wall_seconds']:.0f} | "
        f"{se['ndcg@10']['mean']:.4f} ± {se['ndcg@10']['se']:.4f} | "
        f"{se['hr@10']['mean']:.4f} ± {se['hr@10']['se']:.4f} | {r['git']}"
        f"{' (resumed)' if r['resumed_from'] else ''} |")
  s = result.get("speedup", {})
  ttq = (f"{s['time_to_quality']:.1f}x" if s.get("time_to_quality")
         else "none (the fast run did not reach the target)")
  ttq1 = (f"{s['time_to_quality_1se']:.1f}x" if s.get("time_to_quality_1se")
          else "none (not reached)")
  lines += ["", f"Per-epoch speed-up: {s.get('epoch', float('nan')):.1f}x; time-to-quality "
            f"speed-up to the target: {ttq}; to within one SE of it: {ttq1}."]
  p = result.get("paired")
  if p:
    lines += ["", "Paired test difference fast − full over the same users: " + "; ".join(
        f"{m} {v['diff']:+.4f} ± {v['se']:.4f} ({_VERDICT[v['verdict']]}, "
        f"{v['rel']:+.1%} relative)"
        for m, v in p.items())]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  cfgs = variant_configs()
  key = cfgs["full"].eval.select_metric
  runs = {name: run_variant(name, cfg) for name, cfg in cfgs.items()}
  if not all(r["finished"] for r in runs.values()):
    print("not every variant has finished: " + ", ".join(
        f"{n}: {'done' if r['finished'] else 'missing'}" for n, r in runs.items()))
    return
  rows = [summarize(name, runs[name], cfgs[name], key) for name in ("full", "fast")]
  target = rows[0]["best_valid"]
  ranks = {r["variant"]: stats.load_ranks(r["workdir"]) for r in rows}
  # the target's own noise: the standard error of the full run's best validation figure
  target_se = stats.summarize(stats.load_ranks(rows[0]["workdir"], "valid"), [key])[key]["se"]
  for r in rows:
    hit = first_at(r["valid_curve"], key, target)
    r["seconds_to_target"] = hit["wall"] if hit else None
    r["epoch_to_target"] = hit["epoch"] if hit else None
    near = first_at(r["valid_curve"], key, target - target_se)  # within one SE of it
    r["seconds_to_target_1se"] = near["wall"] if near else None
    r["epoch_to_target_1se"] = near["epoch"] if near else None
    r["test_se"] = stats.summarize(ranks[r["variant"]], ["ndcg@10", "hr@10"])
  full, fast = rows
  speedup = {}
  if full["epoch_seconds_median"] and fast["epoch_seconds_median"]:
    speedup["epoch"] = full["epoch_seconds_median"] / fast["epoch_seconds_median"]
  if full["seconds_to_target"] and fast["seconds_to_target"]:
    speedup["time_to_quality"] = full["seconds_to_target"] / fast["seconds_to_target"]
  if full["seconds_to_target_1se"] and fast["seconds_to_target_1se"]:
    speedup["time_to_quality_1se"] = (full["seconds_to_target_1se"]
                                      / fast["seconds_to_target_1se"])
  paired = stats.paired(ranks["fast"], ranks["full"], ["ndcg@10", "hr@10"])
  for m, v in paired.items():
    v["rel"] = v["diff"] / max(full["test_se"][m]["mean"], 1e-12)
  result = {**common.results_meta(overrides=common.overrides(_CONFIG),
                                  fast_overrides=common.overrides(_FAST),
                                  full_vs_fast=config_diff(cfgs["full"], cfgs["fast"])),
            "preset": _PRESET.value, "variant": _VARIANT.value, "metric": key,
            "target": target, "target_se": target_se, "rows": rows, "speedup": speedup, "paired": paired}
  stem = os.path.join(_OUT.value, f"fast_training_{_TAG.value or _PRESET.value}")
  common.write_results(stem, result, markdown(result))
  print(markdown(result))
  print(f"wrote {stem}.json/.md")


if __name__ == "__main__":
  cli.run(main)
