"""The base config every `configs/*.py` starts from, and its validation.

Every field exists here with its default, so a locked config rejects unknown keys by
name (`--config.model.num_block=4` fails, naming the key).
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_collections

# Public data shipped beside the repository (never inside it); override with SEQREC_DATA.
DATA_ROOT = os.environ.get("SEQREC_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.format = "synthetic"  # synthetic | movielens | ml100k | movielens_csv | sasrec | s3rec | table
  c.data.path = ""
  c.data.time_path = ""  # s3rec: aligned timestamps file
  c.data.titles_path = ""  # item titles (movies.dat / u.item) for printing
  c.data.user_col, c.data.item_col, c.data.time_col, c.data.rating_col = "user", "item", "time", ""
  c.data.sep = ","
  c.data.on_error = "raise"  # raise | skip (malformed rows counted in the report)
  c.data.min_rating = -1.0  # < 0: no threshold
  c.data.user_core = 0
  c.data.item_core = 0
  c.data.dedup = "first"  # first | last | none
  c.data.cache_dir = "cache"
  c.data.download = ""  # "" | ml-100k | ml-1m | ml-20m: fetch into cache_dir if path is missing
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_users=2000, num_items=500, num_topics=10, min_len=10, max_len=60,
      follow_prob=0.7, zipf=1.1, seed=0))

  c.model = ml_collections.ConfigDict()
  c.model.name = "sasrec"
  c.model.max_len = 50
  c.model.embed_dim = 64
  c.model.num_blocks = 2
  c.model.num_heads = 1
  c.model.mlp_dim = 256
  c.model.dropout = 0.2
  c.model.emb_dropout = 0.2
  c.model.dtype = "float32"  # float32 | bfloat16 (compute; params stay float32)
  c.model.attention_impl = ""  # "" (JAX picks) | xla | cudnn

  c.task = ml_collections.ConfigDict()
  c.task.name = "causal"
  c.task.crop = "last"  # last | random window end

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "ce"  # ce (full softmax) | bce (sampled negatives)
  c.loss.vocab_chunk = 0  # > 0: stream the catalogue in chunks of this many items
  c.loss.num_negatives = 1

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.b1 = 0.9
  c.optim.b2 = 0.98
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 1.0
  c.optim.warmup_steps = 100
  c.optim.schedule = "cosine"  # cosine | constant
  c.optim.final_lr_frac = 0.1

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 128  # global
  c.train.num_epochs = 30
  c.train.log_every_steps = 50
  c.train.eval_every_epochs = 5
  c.train.patience = 0  # evaluations without improvement before stopping; 0 = never
  c.train.checkpoint_every_epochs = 1
  c.train.max_to_keep = 2

  c.eval = ml_collections.ConfigDict()
  c.eval.ks = (1, 5, 10, 20, 50)
  c.eval.batch_size = 256
  c.eval.exclude_seen = False  # which ranking the selection metric uses
  c.eval.select_metric = "ndcg@10"

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (-1, 1)
  c.mesh.axes = ("data", "model")
  c.mesh.coordinator = ""  # host:port to join a multi-process run
  c.mesh.num_processes = 1
  c.mesh.process_id = 0
  return c


_CHOICES = {
    "data.on_error": ("raise", "skip"),
    "data.dedup": ("first", "last", "none"),
    "model.dtype": ("float32", "bfloat16"),
    "model.attention_impl": ("", "xla", "cudnn"),
    "task.crop": ("last", "random"),
    "loss.name": ("ce", "bce"),
    "optim.schedule": ("cosine", "constant"),
}


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Rejects values that are the right type but mean nothing, naming the key."""
  for key, allowed in _CHOICES.items():
    section, field = key.split(".")
    value = cfg[section][field]
    if value not in allowed:
      raise ValueError(f"config.{key}={value!r}: expected one of {list(allowed)}")
  positive = ["model.max_len", "model.embed_dim", "model.num_blocks", "model.num_heads",
              "train.batch_size", "train.num_epochs", "train.eval_every_epochs",
              "eval.batch_size", "train.log_every_steps"]
  for key in positive:
    section, field = key.split(".")
    if cfg[section][field] <= 0:
      raise ValueError(f"config.{key}={cfg[section][field]!r} must be > 0")
  if cfg.model.embed_dim % cfg.model.num_heads:
    raise ValueError(f"config.model.embed_dim={cfg.model.embed_dim} is not divisible by "
                     f"config.model.num_heads={cfg.model.num_heads}")
  metric = cfg.eval.select_metric
  name, _, k = metric.partition("@")
  if name not in ("hr", "ndcg", "mrr") or not k.isdigit() or int(k) not in cfg.eval.ks:
    raise ValueError(f"config.eval.select_metric={metric!r}: expected hr|ndcg|mrr@k with k in "
                     f"config.eval.ks={tuple(cfg.eval.ks)}")


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
  """Points `cfg.data` at one of DATASETS (paths under DATA_ROOT)."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
  for key, value in DATASETS[name].items():
    cfg.data[key] = os.path.join(DATA_ROOT, value) if key.endswith("path") else value
  return cfg
