"""Seq2Seq (encoder-decoder generating the next items) on the 'toys' dataset of
../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/seq2seq_toys.py --workdir=runs/seq2seq_toys
  python -m seqrec_jax.generate --workdir=runs/seq2seq_toys --user=<raw id> --steps=5

Trained with teacher forcing on (history, next 5 items) pairs cut at random points;
its first decoder step is the next-item score used by full-ranking evaluation.
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("seq2seq", "toys", arg)
