"""GAN on Amazon Toys and Games (the 'toys' dataset of ../shared/data): SASRec generator
pre-trained by MLE, then adversarial fine-tuning against a Transformer discriminator.

  python -m seqrec_jax.train --config=configs/gan_toys.py --workdir=runs/gan_toys

Variants (comma-separated): smoke, gumbel, learned, elec (discriminator as the
recommender, ELECRec-style). Comparison with MLE alone: benchmarks/gan_compare.py.
"""

from seqrec_jax.config import base_config
from seqrec_jax.presets import gan_variant, use_dataset


def get_config(arg: str = ""):
  cfg = use_dataset(base_config(), "toys")
  cfg.model.max_len = 50
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  cfg.gan.enabled = True
  cfg.gan.epochs = 20
  cfg.gan.eval_every_epochs = 2
  cfg.gan.patience = 5
  cfg.gan.g_lr = 1e-4
  cfg.gan.d_lr = 1e-4
  cfg.gan.mle_weight = 0.5
  cfg.gan.gen_len = 3
  return gan_variant(cfg, arg)
