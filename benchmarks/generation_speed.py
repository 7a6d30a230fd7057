"""Generation speed: users and sequences per second of `infer.generate` (greedy = beam
width 1, and beam search), for SASRec rolled out and Seq2Seq, after compilation, with
and without the KV cache. Randomly initialised models (speed does not depend on the
weights); a batch of users with full history windows. Prints JSON (and writes it, with
the code revision and machine, to <out>/<tag>.json).

  python benchmarks/generation_speed.py            # ML-1M-like shapes on CPU
  python benchmarks/generation_speed.py --items=500 --max_len=20 --batch=8 --repeats=1
Runs on the default JAX backend (set JAX_PLATFORMS=cpu to force the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository root on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax.infer.generate import GenerateConfig, make_generate_fn  # noqa: E402
from seqrec_jax.models.sasrec import SASRec  # noqa: E402
from seqrec_jax.models.seq2seq import Seq2Seq  # noqa: E402

MODELS = {"sasrec": SASRec, "seq2seq": Seq2Seq}


def measure(model, params, history, cfg: GenerateConfig, repeats: int) -> dict:
  fn = make_generate_fn(model, cfg)
  key = jax.random.PRNGKey(0)
  t = time.perf_counter()
  jax.block_until_ready(fn(params, history, history, key))  # compile + one run
  compile_s = time.perf_counter() - t
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(params, history, history, key))
    best = min(best, time.perf_counter() - t)
  users = history.shape[0]
  return {"method": cfg.method, "beams": cfg.width, "use_cache": cfg.use_cache,
          "steps": cfg.steps, "batch": users, "compile_plus_first_s": compile_s,
          "seconds": best, "users_per_s": users / best,
          "sequences_per_s": users * cfg.width / best,
          "items_per_s": users * cfg.width * cfg.steps / best}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default="sasrec,seq2seq")
  parser.add_argument("--items", type=int, default=3416)  # the ML-1M catalogue
  parser.add_argument("--max_len", type=int, default=200)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--blocks", type=int, default=2)
  parser.add_argument("--heads", type=int, default=1)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--beams", default="1,4")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no_uncached", action="store_true",
                      help="skip the recompute-the-prefix reference (use_cache=False)")
  parser.add_argument("--tag", default="generation_speed")
  parser.add_argument("--out", default=str(common.RESULTS), help="results folder")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  history = jnp.asarray(rng.integers(1, args.items + 1, (args.batch, args.max_len)), jnp.int32)
  rows = []
  for name in args.models.split(","):
    model = MODELS[name](num_items=args.items, max_len=args.max_len, embed_dim=args.dim,
                         num_blocks=args.blocks, num_heads=args.heads, mlp_dim=4 * args.dim)
    params = jax.jit(lambda r, m=model: m.init({"params": r}, history[:1])["params"])(
        jax.random.PRNGKey(0))
    params = jax.tree.map(lambda x: x.unbox() if hasattr(x, "unbox") else x, params,
                          is_leaf=lambda x: hasattr(x, "unbox"))
    for width in [int(b) for b in args.beams.split(",")]:
      method = "greedy" if width == 1 else "beam"
      for cache in ([True] if args.no_uncached else [True, False]):
        cfg = GenerateConfig(steps=args.steps, method=method, beams=width, use_cache=cache)
        row = {"model": name, **measure(model, params, history, cfg, args.repeats)}
        print(json.dumps(row), flush=True)
        rows.append(row)
  out = {**common.results_meta(items=args.items, max_len=args.max_len, dim=args.dim,
                               blocks=args.blocks), "rows": rows}
  common.write_results(os.path.join(args.out, args.tag), out)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  main()
