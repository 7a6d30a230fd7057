"""SASRec on the 'ml100k' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_ml100k.py --workdir=runs/sasrec_ml100k
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "ml100k", arg)
