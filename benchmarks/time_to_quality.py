"""Wall time to reach a validation NDCG@10, ours (device path) and the peer (RecBole).

Ours: configs/sasrec_ml1m.py with `train.input=device`, one dispatch per epoch, full-
ranking validation after every `--eval_every` epochs; the clock starts before the
dataset is read (from the cache when present) and includes every compilation. Stops at
the first validation at or above `--target` (default 0.138: RecBole's test NDCG@10 on
one H200 after 2 epochs / 75 s, used here as the validation target), or at
`--max_epochs` / `--max_seconds`.

Peer: RecBole 1.2.1's SASRec through recbole_worker.py in its own venv (see
compare_recbole.py) on the same data and sizes, its clock also starting before its
dataset is built; only with `--peer=recbole` and when that venv exists.

  python benchmarks/time_to_quality.py                       # ours
  python benchmarks/time_to_quality.py --peer=recbole --peer_max_seconds=1800
  python benchmarks/time_to_quality.py --set=train.batch_size=256 --set=optim.lr=2e-3
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax.data import pipeline  # noqa: E402
from seqrec_jax.train import loop, steps  # noqa: E402


def parse_sets(items: list[str]) -> dict:
  out = {}
  for item in items:
    key, _, value = item.partition("=")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def ours(args) -> dict:
  t0 = time.perf_counter()
  overrides = {"model.dtype": args.dtype, **parse_sets(args.set)}
  cfg = common.ml1m_config(**overrides)
  split = common.load_split(cfg)
  data_s = time.perf_counter() - t0
  tr = common.build_trainer(cfg, split)
  rank_fn = steps.jit_rank_step(tr.model, split.data.num_items, tr.state_sh.params, tr.mesh)
  valid = pipeline.eval_arrays(split, "valid", cfg.model.max_len)
  per_dispatch = min(args.steps_per_dispatch or tr.steps_per_epoch, tr.steps_per_epoch)
  metric = cfg.eval.select_metric
  history, reached, state, step = [], None, tr.state, 0
  for epoch in range(1, args.max_epochs + 1):
    while step < epoch * tr.steps_per_epoch:
      n = min(per_dispatch, epoch * tr.steps_per_epoch - step)
      state, m = tr.chunk(state, tr.data, n)
      step += n
    if epoch % args.eval_every and epoch != args.max_epochs:
      continue
    result = loop.evaluate_stage(rank_fn, state.params, valid, cfg.eval.batch_size, tr.mesh,
                                 cfg.eval.ks)
    now = time.perf_counter() - t0
    loss = float(np.asarray(m["loss"])[-1])
    history.append({"epoch": epoch, "step": step, "seconds": now, "loss": loss,
                    f"valid_{metric}": result[metric], "valid_hr@10": result["hr@10"]})
    print(f"ours epoch {epoch}: loss {loss:.4f} valid {metric} {result[metric]:.4f} "
          f"at {now:.1f}s", flush=True)
    if result[metric] >= args.target:
      reached = now
      break
    if now > args.max_seconds:
      break
  return {"seconds_to_target": reached, "data_seconds": data_s, "history": history,
          "dtype": cfg.model.dtype, "attention": tr.attention_impl,
          "batch_size": cfg.train.batch_size, "steps_per_epoch": tr.steps_per_epoch,
          "overrides": overrides}


def peer(args) -> dict:
  if not os.path.exists(args.recbole_python):
    return {"error": f"{args.recbole_python} not found (RecBole not installed here)"}
  cfg = common.ml1m_config()
  split = common.load_split(cfg)
  folder = common.write_recbole_atomic(split.data, tempfile.mkdtemp(prefix="recbole_ml1m_"))
  return common.run_recbole(args.recbole_python, {
      "mode": "ttq", "data_path": folder, "dataset": "ml1m", "max_len": cfg.model.max_len,
      "dim": 64, "mlp_dim": 256, "blocks": 2, "heads": 1, "dropout": 0.2, "batch_size": 128,
      "lr": 1e-3, "target": args.target, "max_seconds": args.peer_max_seconds,
      "epochs": args.max_epochs, "batches_per_epoch": args.peer_batches_per_epoch},
      timeout=args.peer_max_seconds + 900)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--target", type=float, default=0.138, help="validation NDCG@10 to reach")
  p.add_argument("--max_epochs", type=int, default=200)
  p.add_argument("--max_seconds", type=float, default=600.0, help="ours: give up after this")
  p.add_argument("--eval_every", type=int, default=1, help="epochs between validations")
  p.add_argument("--steps_per_dispatch", type=int, default=0, help="0 = one epoch")
  p.add_argument("--dtype", default="", help="default bfloat16 on a GPU, else float32")
  p.add_argument("--set", action="append", default=[], help="config override section.field=value")
  p.add_argument("--peer", choices=["none", "recbole"], default="none")
  p.add_argument("--recbole_python", default="/tmp/recbole-venv/bin/python")
  p.add_argument("--peer_max_seconds", type=float, default=1800.0)
  p.add_argument("--peer_batches_per_epoch", type=int, default=0, help="> 0: bounded (dry runs)")
  p.add_argument("--out", default=str(common.RESULTS))
  p.add_argument("--tag", default="", help="file name suffix (default: backend)")
  args = p.parse_args()
  args.dtype = args.dtype or ("bfloat16" if jax.default_backend() == "gpu" else "float32")
  result = {"machine": common.machine(), "command": "python " + " ".join(sys.argv),
            "target": args.target, "ours": ours(args)}
  if args.peer == "recbole":
    result["recbole"] = peer(args)
  o = result["ours"]
  lines = [f"# Time to validation NDCG@10 >= {args.target}, ML-1M subset, "
           f"{result['machine']['device_kind']}", "", f"Command: `{result['command']}`", "",
           "| trainer | seconds to target (incl. data + compile) | epochs | best valid NDCG@10 |",
           "|---|---|---|---|"]
  best = max((h["valid_ndcg@10"] for h in o["history"]), default=float("nan"))
  lines.append(f"| ours (device path, {o['dtype']}, {o['attention']}) "
               f"| {o['seconds_to_target'] if o['seconds_to_target'] is not None else 'not reached'} "
               f"| {o['history'][-1]['epoch'] if o['history'] else 0} | {best:.4f} |")
  if "recbole" in result:
    r = result["recbole"]
    if "error" in r:
      lines.append(f"| RecBole 1.2.1 | did not run: {r['error'][:200]} | | |")
    else:
      rb = max((h["valid_ndcg@10"] for h in r["history"]), default=float("nan"))
      lines.append(f"| RecBole 1.2.1 ({r['device']}) | {r['seconds_to_target'] or 'not reached'} "
                   f"| {r['history'][-1]['epoch'] if r['history'] else 0} | {rb:.4f} |")
      if r.get("seconds_to_target") and o["seconds_to_target"]:
        lines += ["", f"Speed-up to target: {r['seconds_to_target'] / o['seconds_to_target']:.1f}x"]
  os.makedirs(args.out, exist_ok=True)
  stem = os.path.join(args.out, f"time_to_quality_{args.tag or jax.default_backend()}")
  with open(stem + ".json", "w") as f:
    json.dump(result, f, indent=2, default=float)
  with open(stem + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines[4:]))
  print(f"wrote {stem}.json/.md")


if __name__ == "__main__":
  main()
