"""Grain-path epoch time with and without length-grouped batching, same config and data.

Batches of similar-length sequences cut to their longest window skip padding instead
of computing it (`train.length_grouping`, `pipeline.LengthGroupedEpochs`); the result
is exact per batch. This times whole epochs of the real train step after compiling
every batch width, and counts the positions computed vs the real targets.

  python benchmarks/length_grouping.py --config=configs/sasrec_ml1m.py --groups=0,8 --epochs=1
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import parallel  # noqa: E402
from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.train import steps  # noqa: E402


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


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="configs/sasrec_ml1m.py")
  p.add_argument("--groups", default="0,8", help="train.length_grouping values to compare")
  p.add_argument("--epochs", type=int, default=1)
  p.add_argument("--tag", default="length_grouping_cpu")
  args = p.parse_args()
  name = os.path.splitext(os.path.basename(args.config))[0]
  cfg = importlib.import_module(f"configs.{name}").get_config()
  split = common.load_split(cfg)
  rows = []
  for g in [int(x) for x in args.groups.split(",")]:
    rows.append(time_epochs(cfg, split, g, args.epochs))
    print(json.dumps(rows[-1]), flush=True)
  base = rows[0]["epoch_seconds"]
  lines = [f"Command: `python {' '.join(sys.argv)}`", "",
           "| length_grouping | epoch s | speed-up | real targets/s | padding computed | "
           "widths compiled | compile s |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  for r in rows:
    lines.append(f"| {r['group_batches']} | {r['epoch_seconds']:.1f} | "
                 f"{base / r['epoch_seconds']:.2f}x | {r['real_targets_per_s']:,.0f} | "
                 f"{r['padding_share']:.0%} | {r['widths_compiled']} | {r['compile_seconds']:.0f} |")
  table = "\n".join(lines) + "\n"
  print(table)
  out = common.RESULTS / args.tag
  with open(f"{out}.json", "w") as f:
    json.dump({"meta": {"machine": common.machine(), "config": args.config}, "rows": rows}, f,
              indent=2)
  with open(f"{out}.md", "w") as f:
    f.write(table)


if __name__ == "__main__":
  main()
