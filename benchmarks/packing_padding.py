"""How much of what a training epoch computes is padding: plain batches, length-grouped
batches (`train.length_grouping`) and packed rows (`train.packing`). Counting only: the
batch layouts the pipelines would build, no model, no training.

For each layout, over `--epochs` epochs of the real stream (`steps_per_epoch` batches
each, as the engine runs them):
  * positions: the share of computed token positions (rows x width) that are padding;
    this is what the embedding, the projections, the MLP and the output layer pay for;
  * attention: the share of computed attention scores (rows x width^2) that are not
    between two positions of one history (padding, or another history of a packed
    row), counting the full square the kernel computes.

  python benchmarks/packing_padding.py                      # sasrec on Toys
  python benchmarks/packing_padding.py --model=bert4rec --dataset=toys --epochs=3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from seqrec_jax import config as config_lib  # noqa: E402
from seqrec_jax import presets  # noqa: E402
from seqrec_jax.data import packing, pipeline  # noqa: E402
from seqrec_jax.train import engine  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _example_fn(cfg, num_items: int):
  """The configured task's example map (only its window lengths are used)."""
  task = config_lib.task_name(cfg)
  if task == "causal":
    return pipeline.CausalExample(cfg.model.max_len, cfg.task.crop)
  if task == "cloze":
    return pipeline.ClozeExample(cfg.model.max_len, mask_id=num_items + 1, crop=cfg.task.crop)
  raise ValueError(f"task {task!r}: packing applies to the causal and cloze tasks")


def _summary(rows: int, width_sum: int, square_sum: int, real: int, real_square: int,
             steps: int, batch: int) -> dict:
  return {"steps_per_epoch": steps, "rows_per_batch": batch,
          "computed_positions": int(width_sum), "real_positions": int(real),
          "padding_fraction": 1.0 - real / width_sum,
          "computed_attention": int(square_sum), "real_attention": int(real_square),
          "attention_padding_fraction": 1.0 - real_square / square_sum, "rows": int(rows)}


def plain(windows: np.ndarray, seed: int, batch: int, length: int, epochs: int) -> dict:
  """Random batches of `batch` rows of the full width (the continuous stream)."""
  n = windows.size
  steps = n // batch
  total = steps * batch * epochs
  order = np.concatenate([pipeline.epoch_permutation(seed, e, n)
                          for e in range(math.ceil(total / n))])[:total]
  w = windows[order]
  return _summary(total, total * length, total * length ** 2, w.sum(), (w ** 2).sum(),
                  steps, batch)


def grouped(windows: np.ndarray, seed: int, batch: int, length: int, epochs: int,
            groups: int) -> dict:
  """Length-grouped batches cut to their bucketed longest window."""
  stream = pipeline.LengthGroupedEpochs(_Sized(windows.size), seed, windows,
                                        batch, groups, length)
  width_sum = square_sum = real = real_square = rows = 0
  for e in range(epochs):
    order, widths = stream.epoch_order(e)
    w = windows[order]
    rows += order.size
    width_sum += int(widths.sum()) * batch
    square_sum += int((widths.astype(np.int64) ** 2).sum()) * batch
    real += int(w.sum())
    real_square += int((w ** 2).sum())
  return _summary(rows, width_sum, square_sum, real, real_square, windows.size // batch, batch)


class _Sized:
  """A stand-in source of n sequences (only its length is read)."""

  def __init__(self, n: int):
    self.n = n

  def __len__(self) -> int:
    return self.n


def packed(source, windows: np.ndarray, seed: int, batch: int, length: int,
           epochs: int) -> dict:
  """Packed rows of `length`, `len(packed) // batch` batches per epoch."""
  t0 = time.time()
  pk = packing.PackedSequences(source, windows, length)
  template_s = time.time() - t0
  steps = len(pk) // batch
  total = steps * batch * epochs  # the continuous stream of rows
  t = pk.template
  row_real = np.add.reduceat(t.length.astype(np.int64), t.row_start[:-1])  # [R]
  row_square = np.add.reduceat(t.length.astype(np.int64) ** 2, t.row_start[:-1])
  rows = np.concatenate([pk.epoch_layout(seed, e)[0]
                         for e in range(math.ceil(total / len(pk)))])[:total]
  out = _summary(total, total * length, total * length ** 2, row_real[rows].sum(),
                 row_square[rows].sum(), steps, batch)
  out.update(rows_per_epoch=len(pk), sequences=pk.num_sequences,
             histories_per_row=pk.num_sequences / len(pk), template_seconds=template_s,
             fill_per_epoch=pk.fill())
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="sasrec")
  parser.add_argument("--dataset", default="toys")
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--groups", type=int, default=8, help="train.length_grouping")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  cfg = presets.preset(args.model, args.dataset)
  cfg.train.length_grouping = 0
  _, split = engine.load_split(cfg)
  example_fn = _example_fn(cfg, split.data.num_items)
  source = pipeline.TrainSequences(split, cover_window=cfg.model.max_len
                                   if cfg.task.windows == "cover" else 0)
  windows = example_fn.window_lengths(source.lengths).astype(np.int64)
  b, length, seed = cfg.train.batch_size, cfg.model.max_len, cfg.seed
  result = {
      "model": args.model, "dataset": args.dataset, "task": config_lib.task_name(cfg),
      "max_len": length, "batch_size": b, "epochs_counted": args.epochs,
      "sequences": int(windows.size), "mean_window": float(windows.mean()),
      "median_window": float(np.median(windows)),
      "layouts": {
          "plain": plain(windows, seed, b, length, args.epochs),
          f"length_grouping_{args.groups}": grouped(windows, seed, b, length, args.epochs,
                                                    args.groups),
          "packing": packed(source, windows, seed, b, length, args.epochs),
      },
      "git": engine.git_revision(),
  }
  out = args.out or os.path.join(RESULTS, f"packing_padding_{args.dataset}.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w") as f:
    json.dump(result, f, indent=2)
  for name, r in result["layouts"].items():
    print(f"{name:20s} padding {r['padding_fraction']:.3f} of positions, "
          f"{r['attention_padding_fraction']:.3f} of attention scores, "
          f"{r['steps_per_epoch']} steps/epoch")
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
