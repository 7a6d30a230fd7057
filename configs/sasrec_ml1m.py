"""SASRec on MovieLens-1M users 1-2999 (../shared/data/ml-1m-subset-users1-2999).

  python -m seqrec_jax.train --config=configs/sasrec_ml1m.py --workdir=runs/sasrec_ml1m

d=64, 2 blocks, 1 head, max length 200, full-softmax CE, full-ranking evaluation.
Results and machine: benchmarks/RESULTS.md.
"""

from seqrec_jax.config import base_config, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "ml1m")
  cfg.model.max_len = 200
  cfg.model.embed_dim = 64
  cfg.model.num_blocks = 2
  cfg.model.num_heads = 1
  cfg.model.mlp_dim = 256
  cfg.model.dropout = 0.2
  cfg.model.emb_dropout = 0.2
  cfg.task.crop = "random"  # random window ends: long histories are used in full
  cfg.task.windows = "cover"  # ceil((n-1)/200) windows per history and epoch
  cfg.train.batch_size = 64
  cfg.train.length_grouping = 8  # similar-length batches cut to their longest window (exact)
  cfg.train.num_epochs = 150
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  cfg.optim.lr = 3e-3
  cfg.optim.warmup_steps = 200
  if arg:
    raise ValueError(f"unknown variant {arg!r}")
  return cfg
