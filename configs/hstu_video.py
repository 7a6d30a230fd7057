"""HSTU on the 'video' dataset of ../shared/data (see seqrec_jax.presets.DATASETS).

  python -m seqrec_jax.train --config=configs/hstu_video.py --workdir=runs/hstu_video
"""

from seqrec_jax.presets import preset


def get_config(arg: str = ""):
  return preset("hstu", "video", arg)
