"""SASRec on the 'video' dataset of ../shared/data (see seqrec_jax.config.DATASETS).

  python -m seqrec_jax.train --config=configs/sasrec_video.py --workdir=runs/sasrec_video
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("sasrec", "video", arg)
