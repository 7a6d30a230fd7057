"""HSTU on the 'toys' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_toys.py --workdir=runs/hstu_toys
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "toys", arg)
