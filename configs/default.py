"""Default: SASRec on the built-in synthetic data (offline, ~1-2 min on 2 CPU cores).

  python -m seqrec_jax.train --config=configs/default.py --workdir=runs/default

Variant `:smoke` shrinks everything for a seconds-long run (tests, CI). The preset
itself is `seqrec_jax.presets.default` (importable from the installed package).
"""

from seqrec_jax import presets


def get_config(arg: str = ""):
  return presets.default(arg)
