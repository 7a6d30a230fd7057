"""HSTU on the 'yelp' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_yelp.py --workdir=runs/hstu_yelp
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "yelp", arg)
