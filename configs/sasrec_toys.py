"""SASRec on the 'toys' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_toys.py --workdir=runs/sasrec_toys
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "toys")
  cfg.model.max_len = 50
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  if arg:
    raise ValueError(f"unknown variant {arg!r}")
  return cfg
