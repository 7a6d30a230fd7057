"""Config validation names the key that makes a combination meaningless."""

import pytest

from seqrec_jax import config


def test_cover_windows_need_random_crops():
  cfg = config.base_config()
  cfg.task.windows = "cover"
  with pytest.raises(ValueError, match="config.task.windows='cover'.*crop"):
    config.validate(cfg)
  cfg.task.crop = "random"
  config.validate(cfg)  # accepted
  cfg.model.name = "seq2seq"
  with pytest.raises(ValueError, match="task.windows"):
    config.validate(cfg)
