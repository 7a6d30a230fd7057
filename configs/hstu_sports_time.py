"""HSTU on the 'sports_time' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_sports_time.py --workdir=runs/hstu_sports_time
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "sports_time", arg)
