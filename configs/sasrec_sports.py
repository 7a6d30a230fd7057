"""SASRec on the 'sports' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_sports.py --workdir=runs/sasrec_sports
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "sports", arg)
