"""Peak memory of one SASRec train step against catalogue size, for full CE, chunked CE
and sampled softmax, from XLA's compiled memory analysis (nothing is allocated: the
step is lowered on abstract arrays, so even 10M-item catalogues are analysed on CPU).

  python benchmarks/memory.py [--items=1e4,1e5,1e6,1e7] [--batch=128 --max_len=50 --dim=64]

Writes benchmarks/results/memory_<backend>.{json,md,png}. Peak = arguments + outputs +
temporaries - aliased (donated) bytes, as XLA reports it for the device the step is
compiled for; the point where full CE stops fitting in 80 GB is marked.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository on sys.path)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from seqrec_jax import models, parallel  # noqa: E402
from seqrec_jax.config import base_config  # noqa: E402
from seqrec_jax.train import objectives, optim, steps  # noqa: E402
from seqrec_jax.train.setup import init_fn  # noqa: E402
from seqrec_jax.train.state import TrainState, abstract_state  # noqa: E402

LIMIT_GB = 80.0
LOSSES = {  # label -> config.loss overrides
    "full CE": dict(name="ce"),
    "chunked CE (8192)": dict(name="ce", vocab_chunk=8192),
    "sampled softmax (K=128, shared)": dict(name="sampled_softmax", num_negatives=128,
                                            share_negatives="batch"),
}


def step_memory(num_items: int, loss: dict, batch: int, max_len: int, dim: int) -> dict:
  """Compiled memory of one jitted train step (state donated) on one device."""
  cfg = base_config()
  cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = max_len, dim, 4 * dim
  cfg.loss.update(loss)
  mesh = parallel.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1])
  model = models.build_model(cfg.model, num_items)
  tx = optim.build_optimizer(cfg.optim, 1000)
  init = init_fn(model, max_len)
  boxed = jax.eval_shape(init, jax.random.PRNGKey(0))
  params_sh = parallel.param_shardings(boxed, mesh)
  params = nn.meta.unbox(boxed)
  opt = jax.eval_shape(tx.init, params)
  rep = parallel.replicated(mesh)
  state_sh = TrainState(step=rep, params=params_sh,
                        opt_state=parallel.optimizer_shardings(tx, opt, params_sh, mesh), rng=rep)
  like = TrainState(step=jax.ShapeDtypeStruct((), jnp.int32), params=params, opt_state=opt,
                    rng=jax.ShapeDtypeStruct((2,), jnp.uint32))
  state = abstract_state(state_sh, like)
  bsh = parallel.batch_sharding(mesh)
  spec = lambda dt: jax.ShapeDtypeStruct((batch, max_len), dt, sharding=bsh)
  batch_arrays = {"inputs": spec(jnp.int32), "targets": spec(jnp.int32),
                  "weights": spec(jnp.float32)}
  loss_fn = objectives.causal_loss(model, cfg.loss)
  fn = steps.jit_train_step(loss_fn, tx, state_sh, mesh)
  compiled = fn.lower(state, batch_arrays).compile()
  m = compiled.memory_analysis()
  peak = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes)
  return {"items": num_items, "argument_gb": m.argument_size_in_bytes / 1e9,
          "temp_gb": m.temp_size_in_bytes / 1e9, "output_gb": m.output_size_in_bytes / 1e9,
          "alias_gb": m.alias_size_in_bytes / 1e9, "peak_gb": peak / 1e9}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--items", default="1e4,1e5,1e6,1e7")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--max_len", type=int, default=50)
  p.add_argument("--dim", type=int, default=64)
  p.add_argument("--out", default=str(common.RESULTS / f"memory_{jax.default_backend()}"))
  args = p.parse_args(argv)
  sizes = [int(float(x)) for x in args.items.split(",")]
  rows = {}
  for label, loss in LOSSES.items():
    rows[label] = []
    for v in sizes:
      r = step_memory(v, loss, args.batch, args.max_len, args.dim)
      rows[label].append(r)
      print(f"{label:32s} V={v:>10,d}: peak {r['peak_gb']:9.2f} GB "
            f"(args {r['argument_gb']:.2f}, temp {r['temp_gb']:.2f})", flush=True)
  full = rows["full CE"]
  over = [r["items"] for r in full if r["peak_gb"] > LIMIT_GB]
  meta = common.results_meta(batch=args.batch, max_len=args.max_len, dim=args.dim,
                             limit_gb=LIMIT_GB)
  lines = [f"# Train-step peak memory vs catalogue size ({meta['machine']['backend']})", "",
           common.describe(meta), "",
           f"SASRec d={args.dim}, 2 blocks, batch {args.batch} x {args.max_len}; AdamW state; "
           "XLA compiled memory analysis (arguments + outputs + temporaries - donated).", "",
           "| loss | " + " | ".join(f"V={v:,}" for v in sizes) + " |",
           "| --- |" + " ---: |" * len(sizes)]
  for label, rs in rows.items():
    lines.append(f"| {label} | " + " | ".join(f"{r['peak_gb']:.2f} GB" for r in rs) + " |")
  lines += ["", f"Full CE exceeds {LIMIT_GB:g} GB from V = {over[0]:,}." if over
            else f"Full CE stays under {LIMIT_GB:g} GB at every size measured."]
  common.write_results(args.out, {**meta, "rows": rows, "full_ce_over_limit_from": over[:1]},
                       "\n".join(lines) + "\n")
  try:
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("matplotlib missing: no PNG (pip install -e '.[plot]')")
  else:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for label, rs in rows.items():
      ax.loglog([r["items"] for r in rs], [r["peak_gb"] for r in rs], marker="o", label=label)
    ax.axhline(LIMIT_GB, color="red", linestyle="--", label=f"{LIMIT_GB:g} GB")
    if over:
      ax.axvline(over[0], color="red", linestyle=":", linewidth=1)
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("peak memory of one train step (GB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=120)
  print(f"wrote {args.out}.json/.md/.png")


if __name__ == "__main__":
  main()
