"""HSTU on the 'lastfm' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_lastfm.py --workdir=runs/hstu_lastfm
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "lastfm", arg)
