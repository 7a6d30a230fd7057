"""BERT4Rec on the 'sports_time' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/bert4rec_sports_time.py --workdir=runs/bert4rec_sports_time

Bidirectional encoder, cloze task (mask probability 0.4, plus the final item masked
with probability 0.1), full-softmax CE at masked positions, full-ranking evaluation.
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("bert4rec", "sports_time", arg)
