"""GRU4Rec on the 'ml100k' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/gru4rec_ml100k.py --workdir=runs/gru4rec_ml100k
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("gru4rec", "ml100k", arg)
