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


@pytest.mark.parametrize("model", ["sasrec", "bert4rec", "gru4rec", "hstu", "seq2seq"])
def test_fast_variant_is_a_valid_config_for_every_model(model):
  """`configs/<model>_<dataset>.py:fast`: sampled softmax for every model; packed rows
  only where the model takes segment ids; device-built batches only for the causal task."""
  from seqrec_jax import models, presets  # pylint: disable=import-outside-toplevel
  base, fast = presets.preset(model, "toys"), presets.preset(model, "toys", "fast")
  config.validate(fast)  # the combination passes the config checks
  assert base.loss.name == "ce" and fast.loss.name == "sampled_softmax"
  assert fast.loss.share_negatives == "batch" and fast.loss.num_negatives > 1
  packs = getattr(models.MODELS.get(model), "supports_packing", False)
  assert fast.train.packing == packs
  assert (fast.train.input == "device") == (config.task_name(fast) == "causal")
  assert fast.model.to_dict() == base.model.to_dict()  # the model itself is unchanged
  both = presets.preset(model, "toys", "fast,smoke")
  assert both.model.embed_dim == 16 and both.loss.name == "sampled_softmax"
  with pytest.raises(ValueError, match="unknown variant 'fsat'"):
    presets.preset(model, "toys", "fsat")


def test_every_configs_file_takes_the_fast_and_smoke_variants():
  """`configs/<model>_<dataset>.py:fast` works for each model-dataset file, the
  hand-written ML-1M one included (it once refused every variant)."""
  import importlib  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(__file__).resolve().parents[1] / "configs"
  names = sorted(p.stem for p in root.glob("*_*.py") if not p.stem.startswith(("gan_", "__")))
  assert "sasrec_ml1m" in names and len(names) >= 30
  for name in names:
    module = importlib.import_module(f"configs.{name}")
    fast = module.get_config("fast")
    config.validate(fast)
    assert fast.loss.name == "sampled_softmax", name
    assert module.get_config("fast,smoke").model.embed_dim == 16, name
