"""Where a training step's time goes: one preset's step timed in arms that switch parts of
it off or shrink them (negatives, dropout, ...), in one invocation on one machine.

    python benchmarks/step_ablation.py --preset=sasrec_toys --variant=fast \
        --arms='base:;no_dropout:model.dropout=0.0,model.emb_dropout=0.0;k64:loss.num_negatives=64' \
        --steps=400 --repeats=2 --tag=step_ablation_toys

Arms are written as for `benchmarks/ablation.py` (`name:key=value,...`, `;`-separated; an
empty body is the preset itself). Each arm trains `--steps` steps through the engine
(`train.max_steps_this_run`) in a fresh workdir; its figure is the median logged
`step_time_s` after the first epoch (compilation and the first epoch's warm-up left out).
Arms run interleaved `--repeats` times (A B C A B C), so a change in the machine's load
touches every arm alike; the table gives each repeat and the median. These are step
times, not quality: an arm that drops dropout or negatives is not a better model.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from absl import flags  # noqa: E402

from seqrec_jax import cli, presets  # noqa: E402
from seqrec_jax.train import engine, mle  # noqa: E402,F401  (mle registers the objective)

_PRESET = flags.DEFINE_string("preset", "sasrec_toys", "presets.get name")
_VARIANT = flags.DEFINE_string("variant", "fast", "preset variant")
_ARMS = flags.DEFINE_string("arms", "base:", "';'-separated 'name:key=value,...' arms")
_STEPS = flags.DEFINE_integer("steps", 400, "training steps per arm and repeat")
_REPEATS = flags.DEFINE_integer("repeats", 2, "interleaved repeats of every arm")
_TAG = flags.DEFINE_string("tag", "step_ablation", "results file stem")
_ROOT = flags.DEFINE_string("workdir_root", "runs/step_ablation", "scratch runs go here")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_CONFIG = common.define_overrides()


def step_seconds(workdir: str, steps_per_epoch: int) -> tuple[float, float]:
  """(median step_time_s, median targets/s) of the train records after the first epoch."""
  recs = [r for r in common.read_metrics(workdir)
          if r.get("kind") == "train" and r["step"] > steps_per_epoch and "step_time_s" in r]
  if not recs:
    raise SystemExit(f"{workdir}: no train record after the first epoch; raise --steps")
  return (statistics.median(r["step_time_s"] for r in recs),
          statistics.median(r["targets_per_s"] for r in recs))


def time_arm(name: str, values: dict, repeat: int) -> dict:
  cfg = common.with_overrides(presets.get(_PRESET.value, _VARIANT.value),
                              common.overrides(_CONFIG))
  cfg = common.with_overrides(cfg, common.typed_values(cfg, values))
  cfg.train.max_steps_this_run = _STEPS.value
  cfg.train.log_every_steps = min(cfg.train.log_every_steps, 25)
  workdir = os.path.join(_ROOT.value, _TAG.value, f"{name}_{repeat}")
  shutil.rmtree(workdir, ignore_errors=True)  # a timing, never a resume
  engine.run(cfg, workdir)
  spe = next((r["step"] for r in common.read_metrics(workdir) if r.get("epoch") == 1), 0)
  sec, tps = step_seconds(workdir, spe)
  shutil.rmtree(workdir, ignore_errors=True)
  return {"arm": name, "repeat": repeat, "values": values, "step_s": sec, "targets_per_s": tps}


def markdown(out: dict) -> str:
  lines = [f"Step time by arm, {out['preset']}:{out['variant']}, {out['steps']} steps per "
           f"arm and repeat. {common.describe(out)}", "",
           "| arm | values | step ms (median of repeats) | each repeat, ms | vs first arm |",
           "|---|---|---|---|---|"]
  base = None
  for arm in out["arms"]:
    ms = arm["median_step_s"] * 1e3
    base = ms if base is None else base
    each = ", ".join(f"{r * 1e3:.1f}" for r in arm["step_s"])
    vals = ", ".join(f"{k}={v}" for k, v in arm["values"].items()) or "(preset)"
    lines.append(f"| {arm['name']} | {vals} | {ms:.1f} | {each} | {ms / base:.2f}x |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  arms = common.parse_arms(_ARMS.value)  # "base:" (empty body) is the preset itself
  meta = common.results_meta()
  timings = [time_arm(n, v, r) for r in range(_REPEATS.value) for n, v in arms]
  rows = []
  for name, values in arms:
    mine = [t for t in timings if t["arm"] == name]
    rows.append({"name": name, "values": values, "step_s": [t["step_s"] for t in mine],
                 "median_step_s": statistics.median(t["step_s"] for t in mine),
                 "targets_per_s": [t["targets_per_s"] for t in mine]})
  out = {**meta, "preset": _PRESET.value, "variant": _VARIANT.value, "steps": _STEPS.value,
         "repeats": _REPEATS.value, "overrides": common.overrides(_CONFIG), "arms": rows}
  text = markdown(out)
  common.write_results(os.path.join(_OUT.value, _TAG.value), out, text)
  print(text)


if __name__ == "__main__":
  cli.run(main)
