"""How far the mean sampled-softmax gradient is from the full-softmax gradient, with and
without the logQ correction, as the number of negatives grows (a toy 8-item catalogue,
negatives from a skewed popularity proposal; the setting of
tests/test_sampled_losses.py).

  python benchmarks/logq_bias.py [--draws=4000]

Writes benchmarks/results/logq_bias.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (puts the repository on sys.path)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from seqrec_jax import losses  # noqa: E402


def relative_errors(ks, draws: int) -> list[dict]:
  v, d = 9, 4
  rng = np.random.default_rng(1)
  hidden = jnp.asarray(rng.normal(size=(1, 1, d)), jnp.float32)
  table = jnp.asarray(rng.normal(size=(v, d)), jnp.float32)
  targets, weights = jnp.array([[3]]), jnp.ones((1, 1))
  counts = np.array([0, 50, 20, 10, 5, 5, 3, 2, 1], np.float64)
  stats = losses.LossStats(log_freq=jnp.asarray(np.log(np.where(counts > 0, counts, 1e-30)
                                                       / counts.sum()), jnp.float32))
  full = jax.grad(lambda h: losses.full_softmax_ce(h, table, targets, weights))(hidden)
  rows = []
  for k in ks:
    row = {"negatives": k}
    for logq in (True, False):
      def one(key, k=k, logq=logq):
        return jax.grad(lambda h: losses.sampled_softmax(
            h, table, targets, weights, key, k, sampler="popularity", shared=True,
            stats=stats, logq=logq))(hidden)
      g = jax.vmap(one)(jax.random.split(jax.random.PRNGKey(0), draws)).mean(0)
      row["logq" if logq else "no_logq"] = float(jnp.linalg.norm(g - full)
                                                 / jnp.linalg.norm(full))
    rows.append(row)
    print(row, flush=True)
  return rows


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--draws", type=int, default=4000)
  p.add_argument("--out", default=str(common.RESULTS / "logq_bias"))
  args = p.parse_args(argv)
  rows = relative_errors((16, 64, 256, 1024), args.draws)
  meta = common.results_meta(draws=args.draws)
  md = ["# Sampled softmax: relative error of the mean gradient", "", common.describe(meta), "",
        "| negatives | with logQ | without |", "| ---: | ---: | ---: |"]
  md += [f"| {r['negatives']} | {r['logq']:.4f} | {r['no_logq']:.4f} |" for r in rows]
  common.write_results(args.out, {**meta, "rows": rows}, "\n".join(md) + "\n")
  print(f"wrote {args.out}.json/.md")


if __name__ == "__main__":
  main()
