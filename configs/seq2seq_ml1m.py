"""Seq2Seq (encoder-decoder generating the next items) on the 'ml1m' dataset of
../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/seq2seq_ml1m.py --workdir=runs/seq2seq_ml1m
  python -m seqrec_jax.generate --workdir=runs/seq2seq_ml1m --user=<raw id> --steps=5

Trained with teacher forcing on (history, next 5 items) pairs cut at random points;
its first decoder step is the next-item score used by full-ranking evaluation.
Variant `:smoke`: a tiny one-epoch run.
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "ml1m")
  cfg.model.name = "seq2seq"
  cfg.task.name = "seq2seq"
  cfg.task.future_k = 5
  cfg.model.max_len = 200
  cfg.model.embed_dim = 64
  cfg.model.num_blocks = 2
  cfg.model.num_heads = 1
  cfg.model.mlp_dim = 256
  cfg.model.dropout = 0.2
  cfg.model.emb_dropout = 0.2
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  if arg == "smoke":  # seconds on CPU: tiny model, one epoch
    cfg.model.max_len = 20
    cfg.model.embed_dim = 16
    cfg.model.mlp_dim = 32
    cfg.train.batch_size = 64
    cfg.train.num_epochs = 1
    cfg.train.eval_every_epochs = 1
    cfg.train.log_every_steps = 10
    cfg.train.patience = 0
  elif arg:
    raise ValueError(f"unknown variant {arg!r} (expected '' or 'smoke')")
  return cfg
