"""Side by side: RecBole 1.2.1's SASRec vs ours, training targets/s on the same data
and sizes, in one invocation.

Both train on the data of `--config` (default configs/sasrec_ml1m.py: the ML-1M subset,
users 1-2999, ../shared/data; `--config.a.b=v` overrides as for `python -m
seqrec_jax.train`) read by our loader; it is written as RecBole atomic files (`ml1m.inter`: user_id:token, item_id:token,
rating:float, timestamp:float; see common.write_recbole_atomic) so both see the same
sequences. Split: leave-one-out (RecBole `eval_args: split: {'LS': 'valid_and_test'},
order: TO, mode: full`). Model: the config's sizes (sasrec_ml1m: d=64, 2 blocks, 1
head, inner 256, dropout 0.2, max length 200), full-softmax CE (RecBole `loss_type: CE`,
`train_neg_sample_args: None`); RecBole trains with batch 128, Adam lr 1e-3.

Training targets: RecBole's SASRec trains one target per sample (the next item after
each prefix); ours trains every position of each window that has a real next item
(B x up to L per step). RecBole is timed over a bounded number of batches of its own
`Trainer._train_epoch` (loader + forward + backward + step) after warm-up batches; ours
over whole device-path dispatches (`train.input=device`) after compilation.

RecBole needs torch and lives in its own venv (it does not import with Python 3.12's
NumPy 2 stack as-is). On the 2-core CPU box this was run on:

  /root/.pyenv/versions/3.11.7/bin/python -m venv /tmp/recbole-venv
  /tmp/recbole-venv/bin/pip install torch==2.13.0 recbole==1.2.1   # torch CPU wheel

recbole_worker.py adds the NumPy 2 aliases RecBole 1.2.1 needs and switches autograd
anomaly detection off (RecBole switches it on at import, and it slows it severalfold).

  python benchmarks/compare_recbole.py --recbole_python=/tmp/recbole-venv/bin/python
  python benchmarks/compare_recbole.py --config.model.max_len=50 --config.model.dtype=bfloat16
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
from absl import flags  # noqa: E402

from seqrec_jax import cli  # noqa: E402

_CONFIG = common.define_config(str(common.CONFIGS / "sasrec_ml1m.py"))
flags.DEFINE_string("recbole_python", "/tmp/recbole-venv/bin/python", "")
flags.DEFINE_integer("batches", 100, "RecBole: timed batches")
flags.DEFINE_integer("warmup", 10, "RecBole: untimed batches first")
flags.DEFINE_integer("steps_per_dispatch", 23, "ours (23 = one ML-1M epoch at batch 128)")
flags.DEFINE_integer("dispatches", 1, "ours: timed dispatches")
flags.DEFINE_enum("repeat_ours", "on", ["on", "off"],
                  "measure ours before and after RecBole (load drift on a shared box)")
flags.DEFINE_float("timeout", 1200.0, "RecBole subprocess limit (s)")
flags.DEFINE_string("out", str(common.RESULTS), "results folder")
flags.DEFINE_string("tag", "", "file name suffix (default: backend)")


def ours(args, cfg, split) -> dict:
  spd = args.steps_per_dispatch
  tr = common.build_trainer(cfg, split, num_steps=spd * (args.dispatches + 1))
  r = common.measure(tr, spd, args.dispatches)
  r.update(attention=tr.attention_impl, dtype=cfg.model.dtype, input="device",
           steps_per_epoch=tr.steps_per_epoch)
  print(f"ours: {r['steps_per_s']:.3f} steps/s, {r['targets_per_s']:,.0f} targets/s "
        f"({r['timed_steps']} steps, {r['seconds']:.1f}s; compile {r['compile_s']:.1f}s)",
        flush=True)
  return r


def main(argv) -> None:
  del argv
  args = flags.FLAGS
  start = time.time()
  cfg = common.config_from_flags(_CONFIG, common.DEVICE_PATH)
  split = common.load_split(cfg)
  data = split.data
  print(f"{common.config_name(_CONFIG)}: {data.num_users} users, {data.num_items} items, {data.items.size} "
        f"interactions", flush=True)

  runs = [ours(args, cfg, split)]
  folder = common.write_recbole_atomic(data, tempfile.mkdtemp(prefix="recbole_ml1m_"))
  m = cfg.model
  peer_args = {"mode": "throughput", "data_path": folder, "dataset": "ml1m",
               "max_len": m.max_len, "dim": m.embed_dim, "mlp_dim": m.mlp_dim,
               "blocks": m.num_blocks, "heads": m.num_heads, "dropout": m.dropout,
               "batch_size": 128, "lr": 1e-3, "warmup": args.warmup, "batches": args.batches}
  if os.path.exists(args.recbole_python):
    peer = common.run_recbole(args.recbole_python, peer_args, args.timeout)
  else:
    peer = {"error": f"{args.recbole_python} not found: install RecBole as in this docstring"}
  if "error" in peer:
    print(f"RecBole did not run: {peer['error']}", flush=True)
  else:
    print(f"RecBole: {peer['batches_per_s']:.2f} batches/s, {peer['targets_per_s']:,.0f} "
          f"targets/s ({peer['batches']} batches, {peer['seconds']:.1f}s; {peer['users']} users, "
          f"{peer['items']} items, {peer['sequence_samples']} prefix samples; anomaly detection "
          f"{peer['anomaly_detection']})", flush=True)
  if args.repeat_ours == "on":
    runs.append(ours(args, cfg, split))

  mean = sum(r["targets_per_s"] for r in runs) / len(runs)
  result = {**common.results_meta(config=common.config_name(_CONFIG),
                                  overrides=common.overrides(_CONFIG)),
            "ours": runs, "ours_targets_per_s": mean, "recbole": peer,
            "seconds": time.time() - start}
  lines = [f"# RecBole 1.2.1 SASRec vs seqrec_jax, {result['machine']['device_kind']} "
           f"({os.cpu_count()} cores)", "", common.describe(result), "",
           "| trainer | targets/s | steps (batches)/s | measured over |", "|---|---|---|---|"]
  for i, r in enumerate(runs):
    lines.append(f"| ours (device path, {r['dtype']}, run {i + 1}) | {r['targets_per_s']:,.0f} "
                 f"| {r['steps_per_s']:.3f} | {r['timed_steps']} steps after compile |")
  if "error" not in peer:
    ratio = mean / peer["targets_per_s"]
    result["ratio_targets_per_s"] = ratio
    lines.append(f"| RecBole 1.2.1 (torch {peer['torch']}, {peer['device']}) "
                 f"| {peer['targets_per_s']:,.0f} | {peer['batches_per_s']:.3f} "
                 f"| {peer['batches']} batches after {args.warmup} warm-up |")
    per_step = sum(r["targets_per_s"] / r["steps_per_s"] for r in runs) / len(runs)
    steps_ratio = sum(r["steps_per_s"] for r in runs) / len(runs) / peer["batches_per_s"]
    lines += ["", f"**Ratio (ours / RecBole), training targets/s: {ratio:.1f}x** (ours: mean "
              f"of the runs above; per step: ours {per_step:,.0f} targets, RecBole "
              f"{peer['samples'] / max(peer['batches'], 1):.0f}); steps/s ratio {steps_ratio:.2f}x."]
    print(f"ratio ours/RecBole training targets/s: {ratio:.1f}x", flush=True)
  else:
    lines += ["", f"RecBole did not run: {peer['error'][:500]}"]
  stem = os.path.join(args.out, f"compare_recbole_{args.tag or jax.default_backend()}")
  common.write_results(stem, result, "\n".join(lines) + "\n")
  print(f"wrote {stem}.json/.md ({time.time() - start:.0f}s)")


if __name__ == "__main__":
  cli.run(main)
