"""`python -m seqrec_jax.train --config=configs/x.py --workdir=DIR [--config.a.b=v ...]`.

Trains, or resumes when DIR already holds checkpoints of the run. With
`config.gan.enabled` it runs the adversarial loop instead (`train/adversarial.py`:
MLE pre-training of the generator, then adversarial training).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from seqrec_jax.train.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every save at INFO; -v 0 brings it back
    logging.set_verbosity(logging.WARNING)
  if _CONFIG.value.gan.enabled:
    from seqrec_jax.train.adversarial import train_gan  # pylint: disable=import-outside-toplevel
    train_gan(_CONFIG.value, _WORKDIR.value)
  else:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
