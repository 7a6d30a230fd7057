"""HSTU on the 'sports' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_sports.py --workdir=runs/hstu_sports
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "sports", arg)
