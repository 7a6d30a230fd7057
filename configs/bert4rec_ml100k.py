"""BERT4Rec on the 'ml100k' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/bert4rec_ml100k.py --workdir=runs/bert4rec_ml100k

Bidirectional encoder, cloze task (mask probability 0.2, plus the final item masked
with probability 0.1), full-softmax CE at masked positions, full-ranking evaluation.
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("bert4rec", "ml100k", arg)
