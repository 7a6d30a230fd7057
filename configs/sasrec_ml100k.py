"""SASRec on the 'ml100k' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_ml100k.py --workdir=runs/sasrec_ml100k
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "ml100k")
  cfg.model.max_len = 200
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  if arg:
    raise ValueError(f"unknown variant {arg!r}")
  return cfg
