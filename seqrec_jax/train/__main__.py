"""`python -m seqrec_jax.train --config=configs/x.py --workdir=DIR [--config.a.b=v ...]`.

Trains, or resumes when DIR already holds checkpoints of the run. With
`config.gan.enabled` the adversarial objective runs instead (MLE pre-training of the
generator, then adversarial training). SIGTERM / SIGINT checkpoint and exit 0; the same
command resumes.
"""

from absl import app, flags
from ml_collections import config_flags

from seqrec_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # pylint: disable=import-outside-toplevel (flags first: --help stays fast)
  from seqrec_jax.train.adversarial import train_gan
  from seqrec_jax.train.loop import train_and_evaluate
  if _CONFIG.value.gan.enabled:
    train_gan(_CONFIG.value, _WORKDIR.value)
  else:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
