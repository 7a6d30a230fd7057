"""GAN on MovieLens-1M users 1-2999: SASRec generator (configs/sasrec_ml1m.py settings)
pre-trained by MLE, then adversarial fine-tuning against a Transformer discriminator.

  python -m seqrec_jax.train --config=configs/gan_ml1m.py --workdir=runs/gan_ml1m

Variants (comma-separated): smoke, gumbel, learned, elec (discriminator as the
recommender, ELECRec-style). Comparison with MLE alone: benchmarks/gan_compare.py.
"""

from seqrec_jax.config import base_config
from seqrec_jax.presets import gan_variant, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "ml1m")
  cfg.model.max_len = 200
  cfg.model.embed_dim = 64
  cfg.model.num_blocks = 2
  cfg.model.num_heads = 1
  cfg.model.mlp_dim = 256
  cfg.train.batch_size = 128
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  cfg.optim.lr = 1e-3
  cfg.optim.warmup_steps = 100
  cfg.gan.enabled = True
  cfg.gan.epochs = 20
  cfg.gan.eval_every_epochs = 2
  cfg.gan.patience = 5
  cfg.gan.g_lr = 1e-4
  cfg.gan.d_lr = 1e-4
  cfg.gan.mle_weight = 0.5
  cfg.gan.gen_len = 3
  cfg.gan.d_embed_dim = 64
  cfg.gan.d_num_blocks = 1
  return gan_variant(cfg, arg)
