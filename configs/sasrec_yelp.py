"""SASRec on the 'yelp' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_yelp.py --workdir=runs/sasrec_yelp
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "yelp", arg)
