"""GRU4Rec on the 'toys' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/gru4rec_toys.py --workdir=runs/gru4rec_toys
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("gru4rec", "toys", arg)
