"""SASRec on the 'toys' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_toys.py --workdir=runs/sasrec_toys
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "toys", arg)
