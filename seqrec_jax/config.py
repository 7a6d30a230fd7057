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
  c.data.leave_last_k = 0  # > 0: set each user's last k items aside (multi-step evaluation)
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_users=2000, num_items=500, num_topics=10, min_len=10, max_len=60,
      follow_prob=0.7, zipf=1.1, seed=0))

  c.model = ml_collections.ConfigDict()
  c.model.name = "sasrec"  # sasrec | bert4rec | seq2seq
  c.model.max_len = 50
  c.model.embed_dim = 64
  c.model.num_blocks = 2
  c.model.num_heads = 1
  c.model.mlp_dim = 256
  c.model.dropout = 0.2
  c.model.emb_dropout = 0.2
  c.model.dtype = "float32"  # float32 | bfloat16 (compute; params stay float32)
  c.model.attention_impl = ""  # "" (JAX picks) | xla | cudnn
  c.model.decoder_blocks = 0  # seq2seq decoder depth; 0 = num_blocks
  c.model.input_in_state = True  # sasrec, False: state = norm(blocks' sum), no input residual
  c.model.output_bias = False  # sasrec, True: a learned per-item score bias (popularity prior)

  c.task = ml_collections.ConfigDict()
  c.task.name = "auto"  # auto (the model's own) | causal | cloze | seq2seq
  c.task.crop = "last"  # last | random window end
  # one: one window per sequence and epoch | cover: ceil((n-1)/max_len) random windows,
  # so long histories are trained in full every epoch (needs crop="random")
  c.task.windows = "one"
  c.task.mask_prob = 0.2  # cloze: probability of masking each item
  c.task.mask_last_prob = 0.1  # cloze: probability of also masking the final item
  c.task.future_k = 5  # seq2seq: items the decoder learns to generate

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "ce"  # ce (full softmax) | bce (sampled negatives)
  c.loss.vocab_chunk = 0  # > 0: stream the catalogue in chunks of this many items
  c.loss.num_negatives = 1
  # ce + causal task, > 0: items already in the input prefix enter the training softmax
  # with logit + seen_margin (pushed harder below the target; inference unchanged)
  c.loss.seen_margin = 0.0

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.b1 = 0.9
  c.optim.b2 = 0.98
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 1.0
  c.optim.warmup_steps = 100
  c.optim.schedule = "cosine"  # cosine | constant
  c.optim.final_lr_frac = 0.1
  c.optim.ema_decay = 0.0  # > 0: evaluate and keep a moving average of the parameters

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 128  # global
  c.train.num_epochs = 30
  c.train.log_every_steps = 50
  c.train.eval_every_epochs = 5
  c.train.patience = 0  # evaluations without improvement before stopping; 0 = never
  c.train.checkpoint_every_epochs = 1
  c.train.max_to_keep = 2
  c.train.max_steps_this_run = 0  # > 0: checkpoint and exit after this many steps (time-sliced jobs)
  # Input path: grain (host pipeline, any task) | device (whole dataset on the accelerator,
  # batches built inside the jitted step; causal task only; see data/device_data.py).
  c.train.input = "grain"
  c.train.steps_per_dispatch = 50  # device input: steps per jitted lax.scan (never past an epoch end)
  # grain input: > 0 sorts sequences by length within groups of this many batches and cuts
  # each batch to its longest window (exact; skips padding; one compilation per width).
  c.train.length_grouping = 0

  c.eval = ml_collections.ConfigDict()
  c.eval.ks = (1, 5, 10, 20, 50)
  c.eval.batch_size = 256
  c.eval.exclude_seen = False  # which ranking the selection metric uses
  c.eval.select_metric = "ndcg@10"

  # Adversarial training (seqrec_jax/train/adversarial.py). With gan.enabled, the settings
  # above first pre-train G (the `model`) by MLE, then gan.* drive the adversarial phase.
  c.gan = ml_collections.ConfigDict()
  c.gan.enabled = False
  c.gan.pretrained_dir = ""  # a finished MLE run to start G from ("" = pre-train in workdir/pretrain)
  c.gan.epochs = 10  # adversarial epochs
  c.gan.eval_every_epochs = 1
  c.gan.patience = 0  # evaluations without improvement before stopping; 0 = never
  c.gan.g_lr = 1e-4
  c.gan.d_lr = 1e-4
  c.gan.warmup_steps = 20
  c.gan.d_steps = 1  # n_D discriminator updates per step
  c.gan.g_steps = 1  # n_G generator updates per step
  c.gan.estimator = "reinforce"  # reinforce | gumbel (straight-through Gumbel-softmax)
  c.gan.baseline = "ema"  # reinforce baseline: ema | learned | none
  c.gan.baseline_decay = 0.9
  c.gan.tau_start = 1.0  # gumbel temperature, decayed geometrically to tau_end
  c.gan.tau_end = 0.2
  c.gan.tau_decay_steps = 1000
  c.gan.mle_weight = 0.0  # lambda of the MLE term added to G's loss
  c.gan.noise_dim = 16
  c.gan.noise_mode = "add"  # add | concat
  c.gan.noise_std = 1.0
  c.gan.layout = "continuation"  # continuation (history + gen_len items) | positions (ELECRec)
  c.gan.gen_len = 3  # continuation layout: items G generates
  c.gan.num_positions = 0  # positions layout: positions per row (0 = all)
  c.gan.d_head = "cls"  # cls (classifier) | dot (scores items: can recommend)
  c.gan.recommender = "generator"  # generator | discriminator (needs d_head="dot")
  c.gan.d_embed_dim = 64
  c.gan.d_num_blocks = 1
  c.gan.d_num_heads = 1
  c.gan.d_mlp_dim = 128
  c.gan.d_dropout = 0.1

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
    "task.windows": ("one", "cover"),
    "train.input": ("grain", "device"),
    "task.name": ("auto", "causal", "cloze", "seq2seq"),
    "model.name": ("sasrec", "bert4rec", "seq2seq"),
    "loss.name": ("ce", "bce"),
    "optim.schedule": ("cosine", "constant"),
}


# The tasks that train each model; the first is what task.name="auto" means.
MODEL_TASKS = {"sasrec": ("causal",), "bert4rec": ("cloze",), "seq2seq": ("seq2seq",)}


def task_name(cfg: ml_collections.ConfigDict) -> str:
  """cfg.task.name, with "auto" resolved to the model's own task."""
  if cfg.task.name != "auto":
    return cfg.task.name
  if cfg.model.name not in MODEL_TASKS:
    raise ValueError(f"config.task.name='auto' has no default for model.name="
                     f"{cfg.model.name!r}; set config.task.name")
  return MODEL_TASKS[cfg.model.name][0]


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Rejects values that are the right type but mean nothing, naming the key."""
  for key, allowed in _CHOICES.items():
    section, field = key.split(".")
    value = cfg[section][field]
    if value not in allowed:
      raise ValueError(f"config.{key}={value!r}: expected one of {list(allowed)}")
  positive = ["model.max_len", "model.embed_dim", "model.num_blocks", "model.num_heads",
              "train.batch_size", "train.num_epochs", "train.eval_every_epochs",
              "eval.batch_size", "train.log_every_steps", "task.future_k"]
  for key in positive:
    section, field = key.split(".")
    if cfg[section][field] <= 0:
      raise ValueError(f"config.{key}={cfg[section][field]!r} must be > 0")
  if cfg.model.embed_dim % cfg.model.num_heads:
    raise ValueError(f"config.model.embed_dim={cfg.model.embed_dim} is not divisible by "
                     f"config.model.num_heads={cfg.model.num_heads}")
  if not 0.0 < cfg.task.mask_prob < 1.0:
    raise ValueError(f"config.task.mask_prob={cfg.task.mask_prob!r} must be in (0, 1)")
  if not 0.0 <= cfg.task.mask_last_prob <= 1.0:
    raise ValueError(f"config.task.mask_last_prob={cfg.task.mask_last_prob!r} must be in [0, 1]")
  if cfg.data.leave_last_k < 0 or cfg.model.decoder_blocks < 0:
    raise ValueError("config.data.leave_last_k and config.model.decoder_blocks must be >= 0")
  if cfg.model.output_bias and cfg.model.name != "sasrec":
    raise ValueError(f"config.model.output_bias=True is a SASRec option; model.name="
                     f"{cfg.model.name!r}")
  if cfg.loss.seen_margin < 0:
    raise ValueError(f"config.loss.seen_margin={cfg.loss.seen_margin!r} must be >= 0")
  if cfg.loss.seen_margin and (cfg.loss.name != "ce" or task_name(cfg) != "causal"):
    raise ValueError("config.loss.seen_margin > 0 needs config.loss.name='ce' and the causal "
                     f"task (SASRec); got loss {cfg.loss.name!r}, task {task_name(cfg)!r}")
  if not 0.0 <= cfg.optim.ema_decay < 1.0:
    raise ValueError(f"config.optim.ema_decay={cfg.optim.ema_decay!r} must be in [0, 1)")
  if cfg.train.steps_per_dispatch <= 0:
    raise ValueError(f"config.train.steps_per_dispatch={cfg.train.steps_per_dispatch!r} must be > 0")
  if cfg.task.windows == "cover" and (cfg.task.crop != "random"
                                      or task_name(cfg) not in ("causal", "cloze")):
    raise ValueError("config.task.windows='cover' needs config.task.crop='random' and the "
                     "causal or cloze task (other copies of a sequence would be the same window)")
  if cfg.train.length_grouping < 0:
    raise ValueError(f"config.train.length_grouping={cfg.train.length_grouping!r} must be >= 0")
  if cfg.train.length_grouping and cfg.train.input == "device":
    raise ValueError("config.train.length_grouping needs config.train.input='grain' (the "
                     "device path keeps one static batch shape)")
  if cfg.train.input == "device" and task_name(cfg) != "causal":
    raise ValueError(f"config.train.input='device' supports only the causal task (SASRec); "
                     f"task {task_name(cfg)!r} (model.name={cfg.model.name!r}) needs "
                     f"config.train.input='grain'")
  allowed = MODEL_TASKS.get(cfg.model.name)
  if allowed and task_name(cfg) not in allowed:
    raise ValueError(f"config.task.name={cfg.task.name!r} does not train model.name="
                     f"{cfg.model.name!r}; use one of {list(MODEL_TASKS[cfg.model.name])} or 'auto'")
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


_GAN_CHOICES = {
    "estimator": ("reinforce", "gumbel"), "baseline": ("ema", "learned", "none"),
    "noise_mode": ("add", "concat"), "layout": ("continuation", "positions"),
    "d_head": ("cls", "dot"), "recommender": ("generator", "discriminator"),
}


def validate_gan(cfg: ml_collections.ConfigDict) -> None:
  """Checks config.gan (the adversarial loop calls it besides `validate`)."""
  g = cfg.gan
  for field, allowed in _GAN_CHOICES.items():
    if g[field] not in allowed:
      raise ValueError(f"config.gan.{field}={g[field]!r}: expected one of {list(allowed)}")
  for field in ("epochs", "eval_every_epochs", "d_steps", "g_steps", "noise_dim", "gen_len",
                "d_embed_dim", "d_num_blocks", "d_num_heads", "d_mlp_dim", "tau_decay_steps"):
    if g[field] <= 0:
      raise ValueError(f"config.gan.{field}={g[field]!r} must be > 0")
  if not (g.tau_start > 0 and g.tau_end > 0 and g.g_lr > 0 and g.d_lr > 0):
    raise ValueError("config.gan.tau_start, tau_end, g_lr and d_lr must be > 0")
  if g.mle_weight < 0 or g.num_positions < 0 or g.warmup_steps < 0 or g.patience < 0:
    raise ValueError("config.gan.mle_weight, num_positions, warmup_steps, patience must be >= 0")
  if not 0.0 <= g.baseline_decay < 1.0:
    raise ValueError(f"config.gan.baseline_decay={g.baseline_decay!r} must be in [0, 1)")
  if g.d_embed_dim % g.d_num_heads:
    raise ValueError(f"config.gan.d_embed_dim={g.d_embed_dim} is not divisible by "
                     f"config.gan.d_num_heads={g.d_num_heads}")
  if g.d_head != "dot" and (g.layout == "positions" or g.recommender == "discriminator"):
    raise ValueError("config.gan.layout='positions' and config.gan.recommender='discriminator' "
                     "need config.gan.d_head='dot' (a discriminator that scores items)")
  if cfg.model.output_bias:
    raise ValueError("config.model.output_bias=True is not supported with config.gan: the "
                     "generator's noise would reach the bias coordinate of its state")
  if g.layout == "positions" and cfg.model.name != "sasrec":
    raise ValueError("config.gan.layout='positions' needs a causal generator "
                     f"(model.name='sasrec'), got {cfg.model.name!r}")


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


def preset(model: str, dataset: str, arg: str = "") -> ml_collections.ConfigDict:
  """The standard config of `model` (sasrec | bert4rec | seq2seq) on one of DATASETS.

  `configs/<model>_<dataset>.py` return this; variant `smoke` shrinks it to a
  seconds-long CPU run.
  """
  cfg = use_dataset(base_config(), dataset)
  movielens = dataset in _MOVIELENS
  cfg.model.max_len = 200 if movielens else 50
  cfg.train.num_epochs = 200
  cfg.train.eval_every_epochs = 5
  cfg.train.patience = 6
  cfg.train.length_grouping = 8  # similar-length batches cut to their longest window (exact)
  if model == "bert4rec":
    cfg.model.name, cfg.task.name = "bert4rec", "cloze"
    cfg.task.mask_prob = 0.2 if movielens else 0.4
    cfg.task.mask_last_prob = 0.1
    cfg.model.num_heads = 2
    cfg.model.dropout = cfg.model.emb_dropout = 0.1
  elif model == "seq2seq":
    cfg.model.name, cfg.task.name = "seq2seq", "seq2seq"
    cfg.task.future_k = 5
  elif model != "sasrec":
    raise ValueError(f"unknown model {model!r}; expected sasrec, bert4rec or seq2seq")
  if arg == "smoke":  # seconds on CPU: tiny model, one epoch
    cfg.model.max_len, cfg.model.embed_dim, cfg.model.mlp_dim = 20, 16, 32
    cfg.train.batch_size = 64
    cfg.train.num_epochs = cfg.train.eval_every_epochs = 1
    cfg.train.log_every_steps = 10
    cfg.train.patience = 0
  elif arg:
    raise ValueError(f"unknown variant {arg!r} (expected '' or 'smoke')")
  return cfg
