"""`train_and_evaluate(cfg, workdir)`: an MLE run of the engine (`train/engine.py`).

Kept as the stable entry point of the MLE objective; everything it does lives in the
engine (one loop for every objective) and `train/mle.py` (what MLE computes).
"""

from __future__ import annotations

import ml_collections

from seqrec_jax.train import engine
from seqrec_jax.train import mle as _mle  # noqa: F401  (registers the "mle" objective)
from seqrec_jax.train.engine import NonFiniteLossError  # noqa: F401  (public)


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the configured model in `workdir`; returns the final report."""
  return engine.run(cfg, workdir, "mle")
