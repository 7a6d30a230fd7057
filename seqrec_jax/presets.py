"""Presets: the standard configs, importable from the installed package.

`configs/*.py` are one-line wrappers of these, for `--config=configs/x.py`; a user of
the installed package calls `presets.get("sasrec_toys")` or `presets.preset("sasrec",
"toys")`. Dataset paths are relative to `data.root` ($SEQREC_DATA overrides it).
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from seqrec_jax import config as config_lib
from seqrec_jax import models
from seqrec_jax.config import base_config

# The real datasets of ../shared/data (see its README), by short name.
DATASETS = {
    "ml1m": dict(format="movielens", path="ml-1m-subset-users1-2999/ratings.dat.gz",
                 titles_path="ml-1m/movies.dat"),
    "ml100k": dict(format="ml100k", path="ml-100k/u.data", titles_path="ml-100k/u.item"),
    "video": dict(format="sasrec", path="sasrec/Video.txt"),
    "toys": dict(format="s3rec", path="s3rec/Toys_and_Games.txt"),
    "sports": dict(format="s3rec", path="s3rec/Sports_and_Outdoors.txt"),
    "yelp": dict(format="s3rec", path="s3rec/Yelp.txt"),
    "lastfm": dict(format="s3rec", path="s3rec/LastFM.txt"),
    "sports_time": dict(format="s3rec", path="amazon-sports-ticoserec/Sports_item_org_rank.txt",
                        time_path="amazon-sports-ticoserec/Sports_time_org_rank.txt"),
}


def use_dataset(cfg: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Points `cfg.data` at one of DATASETS: paths relative to `data.root` (the shared
  data folder by default; `--config.data.root=...` or $SEQREC_DATA moves it)."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
  cfg.data.root = config_lib.DEFAULT_DATA_ROOT
  for key, value in DATASETS[name].items():
    cfg.data[key] = value
  return cfg


def gan_variant(cfg: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """Applies comma-separated GAN config variants (`configs/gan_*.py:<variants>`):
  smoke (seconds-long sizes), gumbel (Gumbel-softmax estimator), learned (learned
  REINFORCE baseline), elec (ELECRec: per-position layout, "dot" discriminator used as
  the recommender)."""
  for name in filter(None, (v.strip() for v in variant.split(","))):
    if name == "smoke":
      cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = 20, 16, 32
      cfg.train.batch_size, cfg.train.num_epochs, cfg.train.eval_every_epochs = 32, 2, 1
      cfg.train.log_every_steps, cfg.train.patience = 2, 0
      cfg.eval.batch_size = 64
      cfg.gan.epochs, cfg.gan.gen_len, cfg.gan.warmup_steps = 2, 2, 2
      cfg.gan.d_embed_dim, cfg.gan.d_mlp_dim, cfg.gan.noise_dim = 16, 32, 4
      cfg.gan.g_lr, cfg.gan.d_lr = 1e-3, 1e-3
    elif name == "gumbel":
      cfg.gan.estimator = "gumbel"
    elif name == "learned":
      cfg.gan.baseline = "learned"
    elif name == "elec":
      cfg.gan.layout, cfg.gan.d_head, cfg.gan.recommender = "positions", "dot", "discriminator"
    else:
      raise ValueError(f"unknown variant {name!r} (expected a comma-separated list of "
                       "smoke, gumbel, learned, elec)")
  return cfg


_MOVIELENS = ("ml1m", "ml100k")  # long histories: windows of 200 items

# Variant "fast" (`configs/<model>_<dataset>.py:fast`): the logQ-corrected sampled softmax
# over negatives shared by the batch instead of the full softmax, and, for models that
# take segment ids, packed rows (several histories per row, no padding) instead of
# length grouping; causal-task models also build their batches on the device. Rows of
# a packed batch hold ~9 Amazon histories, so the batch counts fewer rows and the rate is
# higher; these runs converge in far fewer epochs, so the cosine schedule is 40 epochs,
# validated every 2. Chosen on Toys validation NDCG@10 (benchmarks/fast_training.py;
# 1024 negatives over 200 epochs 0.0470, 4096 over 200 0.0503, 4096 over 40 0.0515;
# benchmarks/RESULTS.md, session 7).
# loss.seen_margin is a full-softmax option (configs/sasrec_ml1m.py sets it): off here.
FAST = {"loss.name": "sampled_softmax", "loss.num_negatives": 4096,
        "loss.share_negatives": "batch", "loss.sampler": "uniform", "loss.logq": True,
        "loss.seen_margin": 0.0}
FAST_PACKED = {"train.packing": True, "train.length_grouping": 0, "train.batch_size": 32,
               "optim.lr": 2e-3, "train.num_epochs": 40, "train.eval_every_epochs": 2}
FAST_DEVICE = {"train.input": "device"}


def fast_variant(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Applies the "fast" variant (FAST; FAST_PACKED where the model takes packed rows;
  FAST_DEVICE where the task is causal, the device input path's only task)."""
  entry = models.MODELS.entry(cfg.model.name)
  settings = dict(FAST)
  if getattr(entry.obj, "supports_packing", False):
    settings.update(FAST_PACKED)
  if config_lib.task_name(cfg) == "causal":
    settings.update(FAST_DEVICE, **{"train.length_grouping": 0})
  cfg.update_from_flattened_dict(settings)
  return cfg


def preset(model: str, dataset: str, arg: str = "") -> ml_collections.ConfigDict:
  """The standard config of a registered `model` on one of DATASETS.

  `configs/<model>_<dataset>.py` return this; a model's own preset settings come from
  its registration (`register_model(preset=fn)`, `fn(cfg, movielens)`); variant `smoke`
  shrinks it to a seconds-long CPU run.
  """
  entry = models.MODELS.entry(model)
  cfg = use_dataset(base_config(), dataset)
  movielens = dataset in _MOVIELENS
  cfg.model.max_len = 200 if movielens else 50
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  cfg.train.length_grouping = 8  # similar-length batches cut to their longest window (exact)
  cfg.model.name = model
  cfg.task.name = entry.meta["tasks"][0]
  if entry.meta.get("preset"):
    entry.meta["preset"](cfg, movielens)
  return apply_variants(cfg, arg, _preset_smoke)


def default(arg: str = "") -> ml_collections.ConfigDict:
  """SASRec on the built-in synthetic data (offline, ~1-2 min on 2 CPU cores);
  variant `smoke` shrinks everything for a seconds-long run (tests, CI)."""
  cfg = base_config()
  cfg.data.dedup = "none"  # the planted chains revisit items: keep repeat consumption
  cfg.model.max_len = 50
  cfg.model.embed_dim = 64
  cfg.train.num_epochs = 20
  cfg.train.batch_size = 128
  cfg.train.eval_every_epochs = 5
  cfg.optim.warmup_steps = 50
  return apply_variants(cfg, arg, _default_smoke)


def apply_variants(cfg: ml_collections.ConfigDict, arg: str,
                   smoke: Callable[[ml_collections.ConfigDict], None]
                   ) -> ml_collections.ConfigDict:
  """Applies comma-separated variants in order ("fast,smoke"): `smoke` (the preset's
  seconds-long sizes) and "fast" (`fast_variant`)."""
  for name in filter(None, (v.strip() for v in arg.split(","))):
    if name == "smoke":
      smoke(cfg)
    elif name == "fast":
      fast_variant(cfg)
    else:
      raise ValueError(f"unknown variant {name!r} (expected a comma-separated list of "
                       "smoke, fast)")
  return cfg


def with_variants(cfg: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """`apply_variants` with the presets' smoke sizes: for hand-written configs files
  (configs/sasrec_ml1m.py), so `:fast` and `:smoke` mean there what they mean for every
  preset."""
  return apply_variants(cfg, arg, _preset_smoke)


def _preset_smoke(cfg: ml_collections.ConfigDict) -> None:
  """Seconds on CPU: tiny model, one epoch."""
  cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = 20, 16, 32
  cfg.train.batch_size = 64
  cfg.train.num_epochs = cfg.train.eval_every_epochs = 1
  cfg.train.log_every_steps = 10
  cfg.train.patience = 0


def _default_smoke(cfg: ml_collections.ConfigDict) -> None:
  """The built-in synthetic data and model shrunk for a seconds-long run."""
  cfg.data.synthetic.num_users = 200
  cfg.data.synthetic.num_items = 60
  cfg.data.synthetic.max_len = 30
  cfg.data.cache_dir = ""
  cfg.model.max_len = 20
  cfg.model.embed_dim = 16
  cfg.model.mlp_dim = 32
  cfg.train.batch_size = 32
  cfg.train.num_epochs = 2
  cfg.train.eval_every_epochs = 1
  cfg.train.log_every_steps = 2
  cfg.eval.batch_size = 64


def get(name: str, arg: str = "") -> ml_collections.ConfigDict:
  """A preset by name: "default" or "<model>_<dataset>" (e.g. "sasrec_toys")."""
  if name == "default":
    return default(arg)
  model, sep, dataset = name.partition("_")
  if not sep or model not in models.MODELS or dataset not in DATASETS:
    raise ValueError(f"unknown preset {name!r}: expected 'default' or '<model>_<dataset>' with "
                     f"model in {list(models.MODELS.names())}, dataset in {sorted(DATASETS)}")
  return preset(model, dataset, arg)
