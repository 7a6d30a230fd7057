"""BERT4Rec on the 'video' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/bert4rec_video.py --workdir=runs/bert4rec_video

Bidirectional encoder, cloze task (mask probability 0.4, plus the final item masked
with probability 0.1), full-softmax CE at masked positions, full-ranking evaluation.
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("bert4rec", "video", arg)
