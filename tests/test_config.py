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


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_ema_decay_out_of_range_is_rejected_before_the_run(decay):
  cfg = config.base_config()
  cfg.optim.ema_decay = decay
  with pytest.raises(ValueError, match=r"config.optim.ema_decay=.*\[0, 1\)"):
    config.validate(cfg)
  cfg.optim.ema_decay = 0.999
  config.validate(cfg)  # accepted


def test_seen_margin_needs_ce_and_the_causal_task():
  cfg = config.base_config()
  cfg.loss.seen_margin = 1.0
  config.validate(cfg)  # SASRec + CE: accepted
  cfg.loss.name = "bce"
  with pytest.raises(ValueError, match="config.loss.seen_margin"):
    config.validate(cfg)
  cfg.loss.name = "ce"
  cfg.model.name = "bert4rec"
  with pytest.raises(ValueError, match="config.loss.seen_margin"):
    config.validate(cfg)
  cfg.model.name = "sasrec"
  cfg.loss.seen_margin = -1.0
  with pytest.raises(ValueError, match="must be >= 0"):
    config.validate(cfg)


def test_output_bias_is_a_sasrec_option_without_gan():
  cfg = config.base_config()
  cfg.model.output_bias = True
  config.validate(cfg)  # SASRec: accepted
  cfg.model.name = "bert4rec"
  with pytest.raises(ValueError, match="config.model.output_bias"):
    config.validate(cfg)
  cfg.model.name = "sasrec"
  with pytest.raises(ValueError, match="config.model.output_bias"):
    config.validate_gan(cfg)
