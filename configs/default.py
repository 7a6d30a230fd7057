"""Default: SASRec on the built-in synthetic data (offline, ~1-2 min on 2 CPU cores).

  python -m seqrec_jax.train --config=configs/default.py --workdir=runs/default

Variant `:smoke` shrinks everything for a seconds-long run (tests, CI).
"""

from seqrec_jax.config import base_config


def get_config(arg: str = ""):
  cfg = base_config()
  cfg.data.dedup = "none"  # the planted chains revisit items: keep repeat consumption
  cfg.model.max_len = 50
  cfg.model.embed_dim = 64
  cfg.train.num_epochs = 20
  cfg.train.batch_size = 128
  cfg.train.eval_every_epochs = 5
  cfg.optim.warmup_steps = 50
  if arg == "smoke":
    cfg.data.synthetic.num_users = 200
    cfg.data.synthetic.num_items = 60
    cfg.data.synthetic.max_len = 30
    cfg.data.cache_dir = ""
    cfg.model.max_len = 20
    cfg.model.embed_dim = 16
    cfg.model.mlp_dim = 32
    cfg.train.batch_size = 32
    cfg.train.num_epochs = 2
    cfg.train.eval_every_epochs = 1
    cfg.train.log_every_steps = 2
    cfg.eval.batch_size = 64
  elif arg:
    raise ValueError(f"unknown variant {arg!r} (expected '' or 'smoke')")
  return cfg
