"""GAN on the built-in synthetic data: SASRec generator pre-trained by MLE, then
adversarial training against a Transformer discriminator (offline).

  python -m seqrec_jax.train --config=configs/gan_synthetic.py --workdir=runs/gan_synth
  python -m seqrec_jax.train --config=configs/gan_synthetic.py:smoke --workdir=/tmp/gan_smoke

Variants (comma-separated): smoke, gumbel, learned, elec (see config.gan_variant).
"""

from seqrec_jax.config import base_config
from seqrec_jax.presets import gan_variant


def get_config(arg: str = ""):
  cfg = base_config()
  cfg.model.max_len = 50
  cfg.model.embed_dim = 64
  cfg.train.num_epochs = 20
  cfg.train.batch_size = 128
  cfg.train.eval_every_epochs = 5
  cfg.optim.warmup_steps = 50
  cfg.gan.enabled = True
  cfg.gan.epochs = 5
  cfg.gan.mle_weight = 0.5
  if "smoke" in arg.split(","):  # the default.py:smoke data
    cfg.data.synthetic.num_users = 200
    cfg.data.synthetic.num_items = 60
    cfg.data.synthetic.max_len = 30
    cfg.data.cache_dir = ""
  return gan_variant(cfg, arg)
