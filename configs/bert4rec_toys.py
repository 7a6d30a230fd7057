"""BERT4Rec on the 'toys' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/bert4rec_toys.py --workdir=runs/bert4rec_toys

Bidirectional encoder, cloze task (mask probability 0.4, plus the final item masked
with probability 0.1), full-softmax CE at masked positions, full-ranking evaluation.
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "toys")
  cfg.model.name = "bert4rec"
  cfg.task.name = "cloze"
  cfg.task.mask_prob = 0.4
  cfg.task.mask_last_prob = 0.1
  cfg.model.max_len = 50
  cfg.model.embed_dim = 64
  cfg.model.num_blocks = 2
  cfg.model.num_heads = 2
  cfg.model.mlp_dim = 256
  cfg.model.dropout = 0.1
  cfg.model.emb_dropout = 0.1
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  if arg:
    raise ValueError(f"unknown variant {arg!r}")
  return cfg
