"""HSTU on the 'ml1m' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_ml1m.py --workdir=runs/hstu_ml1m
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "ml1m", arg)
