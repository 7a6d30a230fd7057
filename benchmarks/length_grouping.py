"""Grain-path epoch time with and without length-grouped batching, same config and data.

Batches of similar-length sequences cut to their longest window skip padding instead
of computing it (`train.length_grouping`, `pipeline.LengthGroupedEpochs`); the result
is exact per batch. This times whole epochs of the real train step after compiling
every batch width, and counts the positions computed vs the real targets. The pieces are
the engine's own (`build_setup`, `steps.jit_train_step`, `pipeline.train_dataset`); no
evaluation, selection or checkpointing is involved.

  python benchmarks/length_grouping.py --config=configs/sasrec_ml1m.py --groups=0,8 --epochs=1
  python benchmarks/length_grouping.py --config=configs/default.py:smoke --config.model.max_len=30
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli, parallel  # noqa: E402
from seqrec_jax import config as config_lib  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.train import steps  # noqa: E402

_CONFIG = common.define_config(str(common.CONFIGS / "sasrec_ml1m.py"))
_GROUPS = flags.DEFINE_string("groups", "0,8", "train.length_grouping values to compare")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "timed epochs per value")
_OUT = flags.DEFINE_string("out", str(common.RESULTS), "results folder")
_TAG = flags.DEFINE_string("tag", "length_grouping_cpu", "results file name")


def time_epochs(cfg, split, group_batches: int, epochs: int) -> dict:
  setup = common.build_setup(cfg, split)
  task, state, steps_per_epoch = setup.task, setup.state, setup.steps_per_epoch
  step = steps.jit_train_step(task.loss_fn, setup.tx, setup.state_sh, setup.mesh)
  batch_sh = parallel.batch_sharding(setup.mesh)
  make = lambda: iter(pipeline.train_dataset(task.source, task.example_fn,
                                              global_batch=cfg.train.batch_size, seed=cfg.seed,
                                              group_batches=group_batches))
  # Compile every width the run can see, by running one step at each (not timed).
  t = time.time()
  widths = sorted({pipeline.bucket_length(n, cfg.model.max_len)
                   for n in range(1, cfg.model.max_len + 1)}) if group_batches else [cfg.model.max_len]
  example = next(make())
  fit = lambda v, w: np.pad(v, ((0, 0), (0, max(0, w - v.shape[1]))))[:, :w]  # [B, w]
  for w in widths:
    probe = {k: fit(v, w) if k in task.example_fn.window_keys else v for k, v in example.items()}
    state, m = step(state, parallel.to_global(probe, batch_sh))
  jax.block_until_ready(m)
  compile_s = time.time() - t
  it = make()
  computed = real = 0
  t = time.time()
  for _ in range(epochs * steps_per_epoch):
    batch = next(it)
    computed += batch["weights"].size
    real += float(batch["weights"].sum())
    state, m = step(state, parallel.to_global(batch, batch_sh))
  jax.block_until_ready(m)
  seconds = time.time() - t
  return {"group_batches": group_batches, "epochs": epochs, "steps": epochs * steps_per_epoch,
          "seconds": seconds, "epoch_seconds": seconds / epochs, "compile_seconds": compile_s,
          "widths_compiled": len(widths), "positions_computed": computed, "real_targets": real,
          "real_targets_per_s": real / seconds, "padding_share": 1 - real / computed}


def main(argv) -> None:
  del argv
  cfg = _CONFIG.value
  config_lib.validate(cfg)
  split = common.load_split(cfg)
  rows = []
  for g in [int(x) for x in _GROUPS.value.split(",")]:
    rows.append(time_epochs(cfg, split, g, _EPOCHS.value))
    print(json.dumps(rows[-1]), flush=True)
  meta = common.results_meta(config=common.config_name(_CONFIG),
                             overrides=common.overrides(_CONFIG))
  base = rows[0]["epoch_seconds"]
  lines = [common.describe(meta), "",
           "| length_grouping | epoch s | speed-up | real targets/s | padding computed | "
           "widths compiled | compile s |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for r in rows:
    lines.append(f"| {r['group_batches']} | {r['epoch_seconds']:.1f} | "
                 f"{base / r['epoch_seconds']:.2f}x | {r['real_targets_per_s']:,.0f} | "
                 f"{r['padding_share']:.0%} | {r['widths_compiled']} | {r['compile_seconds']:.0f} |")
  table = "\n".join(lines) + "\n"
  print(table)
  common.write_results(os.path.join(_OUT.value, _TAG.value), {**meta, "rows": rows}, table)


if __name__ == "__main__":
  cli.run(main)
