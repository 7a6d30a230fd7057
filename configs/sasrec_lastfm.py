"""SASRec on the 'lastfm' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_lastfm.py --workdir=runs/sasrec_lastfm
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "lastfm", arg)
