"""A synthetic catalogue of up to 10 million items trains with sampled softmax on this
machine: SASRec (d=64, max length 50, batch 128) with the library's model, task loss,
optimizer, sharded state and jitted step; random histories over the whole catalogue.

  python benchmarks/scale_items.py [--items=10000000 --steps=20 --negatives=128]

Writes benchmarks/results/scale_<items>_<backend>.json: per-step loss and time, the
compiled step's memory analysis and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import models, parallel  # noqa: E402
from seqrec_jax.config import base_config  # noqa: E402
from seqrec_jax.train import objectives, optim, steps  # noqa: E402
from seqrec_jax.train.setup import init_fn  # noqa: E402
from seqrec_jax.train.state import create_train_state  # noqa: E402


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--items", type=int, default=10_000_000)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--negatives", type=int, default=128)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--max_len", type=int, default=50)
  p.add_argument("--dim", type=int, default=64)
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  cfg = base_config()
  cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = args.max_len, args.dim, 4 * args.dim
  cfg.loss.update(dict(name="sampled_softmax", num_negatives=args.negatives,
                       share_negatives="batch", sampler="uniform"))
  mesh = parallel.make_mesh((-1, 1), ("data", "model"))
  model = models.build_model(cfg.model, args.items)
  tx = optim.build_optimizer(cfg.optim, args.steps)
  t0 = time.time()
  state, state_sh = create_train_state(init_fn(model, args.max_len), tx, 0, mesh)
  init_s = time.time() - t0
  loss_fn = objectives.causal_loss(model, cfg.loss)
  step_fn = steps.jit_train_step(loss_fn, tx, state_sh, mesh)
  rng = np.random.default_rng(0)
  bsh = parallel.batch_sharding(mesh)

  def batch():
    seqs = rng.integers(1, args.items + 1, (args.batch, args.max_len + 1)).astype(np.int32)
    lengths = rng.integers(2, args.max_len + 2, args.batch)
    mask = np.arange(args.max_len + 1)[None] < lengths[:, None]
    seqs = np.where(mask, seqs, 0)
    return parallel.to_global({"inputs": seqs[:, :-1], "targets": seqs[:, 1:],
                               "weights": (seqs[:, 1:] > 0).astype(np.float32)}, bsh)

  first = batch()
  t0 = time.time()
  compiled = step_fn.lower(state, first).compile()
  compile_s = time.time() - t0
  mem = compiled.memory_analysis()
  log = []
  for i in range(args.steps):
    b = first if i == 0 else batch()
    t0 = time.time()
    state, m = compiled(state, b)
    loss = float(m["loss"])  # blocks until the step is done
    log.append({"step": i + 1, "loss": loss, "seconds": time.time() - t0})
    print(f"step {i + 1}/{args.steps}: loss {loss:.4f} ({log[-1]['seconds']:.2f} s)", flush=True)
  finite = all(np.isfinite(r["loss"]) for r in log)
  out = args.out or str(common.RESULTS / f"scale_{args.items}_{jax.default_backend()}")
  meta = common.results_meta(items=args.items, negatives=args.negatives, batch=args.batch,
                             max_len=args.max_len, dim=args.dim)
  result = {**meta, "init_seconds": init_s, "compile_seconds": compile_s, "steps": log,
            "all_losses_finite": finite,
            "median_step_seconds": float(np.median([r["seconds"] for r in log[1:]] or [0])),
            "compiled_memory_gb": {"arguments": mem.argument_size_in_bytes / 1e9,
                                   "temporaries": mem.temp_size_in_bytes / 1e9,
                                   "outputs": mem.output_size_in_bytes / 1e9,
                                   "aliased": mem.alias_size_in_bytes / 1e9},
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
  md = (f"# {args.items:,}-item catalogue, sampled softmax (K={args.negatives}, shared)\n\n"
        f"{common.describe(meta)}\n\n{args.steps} steps, all losses finite: {finite}; "
        f"first loss {log[0]['loss']:.4f}, last {log[-1]['loss']:.4f}; median step "
        f"{result['median_step_seconds']:.2f} s; compile {compile_s:.1f} s; peak RSS "
        f"{result['peak_rss_gb']:.1f} GB.\n")
  common.write_results(out, result, md)
  print(md)
  if not finite:
    sys.exit(1)


if __name__ == "__main__":
  main()
