"""SASRec on the 'lastfm' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_lastfm.py --workdir=runs/sasrec_lastfm
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "lastfm")
  cfg.model.max_len = 50
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  if arg:
    raise ValueError(f"unknown variant {arg!r}")
  return cfg
