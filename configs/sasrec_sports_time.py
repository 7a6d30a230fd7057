"""SASRec on the 'sports_time' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_sports_time.py --workdir=runs/sasrec_sports_time
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "sports_time", arg)
