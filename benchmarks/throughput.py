"""Training throughput of SASRec on the device-resident path, over a grid of sizes.

For each row: steps/s, training targets/s (positions with a real next item), tokens/s
(all B*L positions), FLOPs per step counted analytically and by XLA (cost analysis of
one step's HLO), MFU against the device's peak, peak memory (XLA's memory analysis of
the compiled dispatch; the allocator's peak where the device reports one) and compile
time. Rows use synthetic data on the device (every window full) plus one row of
`--config` (default configs/sasrec_ml1m.py: the real ML-1M subset; `--config.a.b=v`
overrides, as for `python -m seqrec_jax.train`) on the device path. Writes JSON (with
the code revision and machine), a markdown table and a PNG into --out.

  # CPU (small default grid):
  python benchmarks/throughput.py
  # any grid (cartesian product of the lists):
  python benchmarks/throughput.py --dims=64,128 --blocks=2 --lengths=50,200 \
      --batches=128 --items=3500 --dtypes=float32
  # GPU rows up to d=512 / 8 blocks / L=512 / bf16 and catalogues up to 1M items:
  python benchmarks/throughput.py --preset=gpu
  # the config row on other data:
  python benchmarks/throughput.py --config=configs/default.py:smoke --preset=cpu
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli  # noqa: E402

# (dim, blocks, length, batch, items, dtype, vocab_chunk)
PRESETS = {
    "cpu": [(64, 2, 50, 128, 3500, "float32", 0), (64, 2, 200, 128, 3500, "float32", 0)],
    "gpu": [
        (64, 2, 200, 128, 3500, "float32", 0),  # the ML-1M shape
        (64, 2, 200, 128, 3500, "bfloat16", 0),
        (64, 2, 200, 1024, 3500, "bfloat16", 0),  # larger batch
        (256, 4, 200, 256, 50_000, "bfloat16", 16384),
        (512, 8, 512, 128, 100_000, "bfloat16", 16384),  # d=512, 8 blocks, L=512
        (64, 2, 200, 128, 100_000, "bfloat16", 16384),  # catalogue sweep
        (64, 2, 200, 128, 1_000_000, "bfloat16", 65536),
    ],
}
SHORT = {"float32": "f32", "bfloat16": "bf16"}
FIELDS = ("dim", "blocks", "length", "batch", "items", "dtype", "vocab_chunk")


def parse_ints(text: str) -> list[int]:
  return [int(x) for x in text.split(",") if x]


def grid_rows(args) -> list[dict]:
  lists = [args.dims, args.blocks, args.lengths, args.batches, args.items, args.dtypes]
  if any(lists):
    preset = PRESETS[args.preset][0]
    values = [parse_ints(v) if v and i < 5 else (v.split(",") if v else None)
              for i, v in enumerate(lists)]
    values = [v if v is not None else [preset[i]] for i, v in enumerate(values)]
    rows = [r + (args.vocab_chunk,) for r in itertools.product(*values)]
  else:
    rows = PRESETS[args.preset]
  return [dict(zip(FIELDS, r)) for r in rows]


def run_row(row: dict, args, peak: float) -> dict:
  cfg = common.sasrec_config(dim=row["dim"], blocks=row["blocks"], length=row["length"],
                             batch=row["batch"], dtype=row["dtype"],
                             vocab_chunk=row["vocab_chunk"], attention_impl=args.attention_impl)
  steps = args.steps_per_dispatch * (args.dispatches + 1)
  users = max(4 * row["batch"], 64)
  split = common.synthetic_split(users, row["items"], row["length"], seed=0)
  return finish(common.build_trainer(cfg, split, num_steps=steps), row, args, peak)


def run_config(args, peak: float) -> dict:
  """The row of --config on the device path (its data, its sizes)."""
  cfg = common.config_from_flags(_CONFIG, {**common.DEVICE_PATH, "model.dtype": args.config_dtype,
                                           "model.attention_impl": args.attention_impl})
  split = common.load_split(cfg)
  tr = common.build_trainer(cfg, split, num_steps=args.steps_per_dispatch * (args.dispatches + 1))
  row = {"dim": cfg.model.embed_dim, "blocks": cfg.model.num_blocks, "length": cfg.model.max_len,
         "batch": cfg.train.batch_size, "items": split.data.num_items, "dtype": cfg.model.dtype,
         "vocab_chunk": cfg.loss.vocab_chunk, "data": common.config_name(_CONFIG)}
  return finish(tr, row, args, peak)


def finish(tr, row: dict, args, peak: float) -> dict:
  r = common.measure(tr, args.steps_per_dispatch, args.dispatches)
  out = {"data": "synthetic", **row, "attention": tr.attention_impl, **r}
  out["mfu_analytic"] = r["flops_analytic_step"] * r["steps_per_s"] / peak
  out["mfu_xla"] = r["flops_xla_step"] * r["steps_per_s"] / peak
  print(f"  {out['data']:>9} d={row['dim']} blocks={row['blocks']} L={row['length']} "
        f"B={row['batch']} V={row['items']} {row['dtype']} [{tr.attention_impl}]: "
        f"{r['steps_per_s']:.2f} steps/s, {common.fmt_si(r['targets_per_s'])} targets/s, "
        f"{common.fmt_si(r['tokens_per_s'])} tokens/s, MFU {100 * out['mfu_analytic']:.1f}% "
        f"(XLA {100 * out['mfu_xla']:.1f}%), compile {r['compile_s']:.1f}s, "
        f"mem {_bytes(r.get('compiled_peak_bytes'))}", flush=True)
  return out


def _bytes(x) -> str:
  return "n/a" if x is None else common.fmt_si(x) + "B"


def markdown(rows: list[dict], meta: dict) -> str:
  head = ("| data | d | blocks | L | B | items | dtype | attn | steps/s | targets/s | tokens/s "
          "| GFLOP/step (analytic / XLA) | MFU analytic | MFU XLA | peak mem (XLA) "
          "| device peak | compile s |")
  lines = [common.describe(meta), "", f"Peak {common.fmt_si(meta['peak_flops'])}FLOP/s "
           f"({meta['peak_source']}); {meta['steps_per_dispatch']} steps per dispatch, "
           f"{meta['dispatches']} timed dispatches.", "", head,
           "|" + "---|" * (head.count("|") - 1)]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r.get('data', 'synthetic')} | {r['dim']} | {r['blocks']} | {r['length']} "
                   f"| {r['batch']} | {r['items']} | {r['dtype']} | | failed: {r['error'][:80]} |")
      continue
    lines.append(
        f"| {r['data']} | {r['dim']} | {r['blocks']} | {r['length']} | {r['batch']} "
        f"| {r['items']} | {r['dtype']} | {r['attention']} | {r['steps_per_s']:.2f} "
        f"| {common.fmt_si(r['targets_per_s'])} | {common.fmt_si(r['tokens_per_s'])} "
        f"| {r['flops_analytic_step'] / 1e9:.1f} / {r['flops_xla_step'] / 1e9:.1f} "
        f"| {100 * r['mfu_analytic']:.1f}% | {100 * r['mfu_xla']:.1f}% "
        f"| {_bytes(r.get('compiled_peak_bytes'))} "
        f"| {_bytes(r.get('device_peak_bytes_in_use'))} "
        f"| {r['compile_s']:.1f} |")
  return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  ok = [r for r in rows if "error" not in r]
  if not ok:
    return
  labels = [f"{'config ' if r['data'] != 'synthetic' else ''}d{r['dim']} b{r['blocks']} "
            f"L{r['length']} B{r['batch']}\nV{common.fmt_si(r['items'])} "
            f"{SHORT.get(r['dtype'], r['dtype'])} {r['attention']}"
            for r in ok]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(ok)), 4.5))
  ax1.bar(range(len(ok)), [r["targets_per_s"] for r in ok], color="tab:blue")
  ax1.set_yscale("log")
  ax1.set_ylabel("training targets / s")
  ax2.bar(range(len(ok)), [100 * r["mfu_analytic"] for r in ok], color="tab:orange")
  ax2.set_ylabel("MFU % (analytic FLOPs)")
  for ax in (ax1, ax2):
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
  fig.suptitle(f"SASRec training throughput (device-resident path), "
               f"{jax.devices()[0].device_kind}")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


_CONFIG = common.define_config(str(common.CONFIGS / "sasrec_ml1m.py"),
                               "the config row's config (configs/*.py[:variant]); "
                               "--config.a.b=v overrides")
flags.DEFINE_enum("preset", None, sorted(PRESETS), "row list; default gpu on a GPU, else cpu")
flags.DEFINE_string("dims", "", "")
flags.DEFINE_string("blocks", "", "")
flags.DEFINE_string("lengths", "", "")
flags.DEFINE_string("batches", "", "")
flags.DEFINE_string("items", "", "catalogue sizes")
flags.DEFINE_string("dtypes", "", "float32,bfloat16")
flags.DEFINE_integer("vocab_chunk", 0, "for grid rows (CE streaming)")
flags.DEFINE_enum("attention_impl", "", ["", "xla", "cudnn"], "")
flags.DEFINE_integer("steps_per_dispatch", 0, "default 5 CPU, 20 GPU")
flags.DEFINE_integer("dispatches", 0, "timed dispatches; default 2 CPU, 3 GPU")
flags.DEFINE_enum("config_row", "on", ["on", "off"], "the row of --config (real ML-1M data)")
flags.DEFINE_string("config_dtype", "", "the config row's model.dtype unless --config.model."
                    "dtype sets it; default float32 (CPU) / bfloat16 (GPU)")
flags.DEFINE_float("peak_tflops", 0.0, "")
flags.DEFINE_float("max_seconds", 0.0, "skip rows after this long")
flags.DEFINE_string("out", str(common.RESULTS), "output folder")
flags.DEFINE_string("tag", "", "file name suffix (default: backend)")


def main(argv) -> None:
  del argv
  args = flags.FLAGS
  gpu = jax.default_backend() == "gpu"
  args.preset = args.preset or ("gpu" if gpu else "cpu")
  args.steps_per_dispatch = args.steps_per_dispatch or (20 if gpu else 5)
  args.dispatches = args.dispatches or (3 if gpu else 2)
  args.config_dtype = args.config_dtype or ("bfloat16" if gpu else "float32")
  peak, source = common.peak_flops(args.peak_tflops)
  start = time.time()
  print(f"{common.machine()['device_kind']}: peak {common.fmt_si(peak)}FLOP/s ({source})",
        flush=True)
  rows = []
  todo = ([("config", None)] if args.config_row == "on" else []) + [("grid", r) for r in grid_rows(args)]
  for kind, row in todo:
    if args.max_seconds and time.time() - start > args.max_seconds:
      print(f"  --max_seconds={args.max_seconds:g} reached; skipping {kind} {row}", flush=True)
      continue
    try:
      rows.append(run_config(args, peak) if kind == "config" else run_row(row, args, peak))
    except Exception as e:  # pylint: disable=broad-except  (e.g. out of memory: keep going)
      print(f"  {kind} {row} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
      rows.append({**(row or {"dim": 64, "blocks": 2, "length": 200, "batch": 128,
                               "items": 0, "dtype": args.config_dtype,
                               "data": common.config_name(_CONFIG)}),
                   "error": f"{type(e).__name__}: {e}"})
    jax.clear_caches()
  meta = common.results_meta(peak_flops=peak, peak_source=source,
                             steps_per_dispatch=args.steps_per_dispatch,
                             dispatches=args.dispatches, seconds=time.time() - start,
                             config=common.config_name(_CONFIG),
                             overrides=common.overrides(_CONFIG))
  stem = os.path.join(args.out, f"throughput_{args.tag or jax.default_backend()}")
  common.write_results(stem, {**meta, "rows": rows}, markdown(rows, meta))
  plot(rows, stem + ".png")
  print(f"wrote {stem}.json/.md/.png ({time.time() - start:.0f}s)")
  if any(math.isnan(r.get("mfu_analytic", 0.0)) for r in rows):
    print("note: MFU is nan where the peak is unknown; pass --peak_tflops")


if __name__ == "__main__":
  cli.run(main)
