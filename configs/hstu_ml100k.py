"""HSTU on the 'ml100k' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_ml100k.py --workdir=runs/hstu_ml100k
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "ml100k", arg)
