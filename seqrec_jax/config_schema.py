"""The one table of constraints on every config field: its type and its range or choices.

`config.validate` calls `check(cfg)` first, so a bad value is rejected by name before
any data is read or anything is compiled:

    config.optim.lr=-0.001: must be > 0
    config.model.dropout=1.5: must be in [0, 1)
    config.eval.ks=(1, -5): every element must be an int >= 1
    unknown config key config.model.num_block; did you mean config.model.num_blocks?

A field's type is the type of its default in `base_config()`; `RULES` adds its range
(or choices: enumerations come from `config.choices()`, so a registered component is
a valid choice at once). Cross-field rules (divisibility, task/loss pairs) stay in
`config.validate`. A field of `base_config()` with no rule here is type-checked only,
and `tests/reliability/test_config_schema.py` fails until it gets one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class Rule:
  """A range `lo .. hi` (None = unbounded; `open_lo`/`open_hi` exclude the end), a set of
  `choices` ("registry" = config.choices()[key]), or a rule for each tuple element."""

  lo: float | None = None
  hi: float | None = None
  open_lo: bool = False
  open_hi: bool = False
  choices: tuple | str | None = None
  each: "Rule | None" = None
  each_type: type | None = None
  nonempty: bool = False
  also: tuple = ()  # extra allowed values outside the range (e.g. -1 = "all")

  def describe(self) -> str:
    if self.lo is not None and self.hi is not None:
      return (f"in {'(' if self.open_lo else '['}{_num(self.lo)}, {_num(self.hi)}"
              f"{')' if self.open_hi else ']'}")
    if self.lo is not None:
      return f"{'>' if self.open_lo else '>='} {_num(self.lo)}"
    if self.hi is not None:
      return f"{'<' if self.open_hi else '<='} {_num(self.hi)}"
    return "any value"

  def contains(self, v: float) -> bool:
    if v in self.also:
      return True
    if isinstance(v, float) and not math.isfinite(v):
      return False
    if self.lo is not None and (v <= self.lo if self.open_lo else v < self.lo):
      return False
    if self.hi is not None and (v >= self.hi if self.open_hi else v > self.hi):
      return False
    return True


def _num(x: float) -> str:
  return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


ANY = Rule()
POS = Rule(lo=1)  # ints >= 1
NONNEG = Rule(lo=0)
POS_REAL = Rule(lo=0, open_lo=True)
PROB = Rule(lo=0, hi=1)  # [0, 1]
RATE = Rule(lo=0, hi=1, open_hi=True)  # [0, 1): dropouts, decays, betas
REG = Rule(choices="registry")  # one of config.choices()[key]


def _seed() -> Rule:
  return Rule(lo=0, hi=2**31 - 1)


# Every field of base_config(), by dotted key. Keep in step with config.base_config().
RULES: dict[str, Rule] = {
    "seed": _seed(),
    # data
    "data.format": Rule(choices="formats"), "data.root": ANY, "data.path": ANY,
    "data.time_path": ANY, "data.titles_path": ANY,
    "data.user_col": Rule(nonempty=True), "data.item_col": Rule(nonempty=True),
    "data.time_col": Rule(nonempty=True), "data.rating_col": ANY,
    "data.sep": Rule(nonempty=True), "data.on_error": REG, "data.min_rating": ANY,
    "data.user_core": NONNEG, "data.item_core": NONNEG, "data.dedup": REG,
    "data.cache_dir": ANY, "data.download": Rule(choices="downloads"),
    "data.leave_last_k": NONNEG, "data.cold_items_frac": RATE, "data.cold_seed": _seed(),
    "data.synthetic.num_users": POS, "data.synthetic.num_items": Rule(lo=2),
    "data.synthetic.num_topics": POS, "data.synthetic.min_len": POS,
    "data.synthetic.max_len": POS, "data.synthetic.follow_prob": PROB,
    "data.synthetic.zipf": POS_REAL, "data.synthetic.seed": _seed(),
    # model (shared fields, then the registered models' own options)
    "model.name": REG, "model.max_len": POS, "model.embed_dim": POS, "model.num_blocks": POS,
    "model.num_heads": POS, "model.mlp_dim": POS, "model.dropout": RATE,
    "model.emb_dropout": RATE, "model.dtype": REG, "model.attention_impl": REG,
    "model.input_in_state": ANY, "model.output_bias": ANY, "model.decoder_blocks": NONNEG,
    "model.scan_layers": ANY, "model.remat": REG,
    "model.item_repr": Rule(choices=("id", "text_init", "text_adapter", "text_only",
                                     "text_finetune")),
    "model.item_combine": Rule(choices=("sum", "gate")), "model.adapter_dim": NONNEG,
    "model.id_dropout": RATE, "model.finetune_layers": POS, "model.finetune_items": POS,
    "model.finetune_tokens": Rule(lo=2), "model.finetune_lr_scale": POS_REAL,
    "model.item_attributes": ANY, "model.time_features": ANY,
    "model.qk_dim": NONNEG, "model.v_dim": NONNEG, "model.temperature": POS_REAL,
    "model.time_buckets": POS,
    # task
    "task.name": REG, "task.crop": REG, "task.windows": REG,
    "task.mask_prob": Rule(lo=0, hi=1, open_lo=True, open_hi=True), "task.mask_last_prob": PROB,
    "task.future_k": POS, "task.max_predictions": NONNEG,
    # loss
    "loss.name": REG, "loss.vocab_chunk": NONNEG, "loss.num_negatives": POS,
    "loss.sampler": REG, "loss.seen_margin": NONNEG, "loss.share_negatives": REG,
    "loss.logq": ANY, "loss.pop_alpha": NONNEG, "loss.gbce_t": PROB,
    # optim
    "optim.lr": POS_REAL, "optim.b1": RATE, "optim.b2": RATE, "optim.weight_decay": NONNEG,
    "optim.clip_norm": POS_REAL, "optim.warmup_steps": NONNEG, "optim.schedule": REG,
    "optim.final_lr_frac": PROB, "optim.ema_decay": RATE,
    # train
    "train.batch_size": POS, "train.num_epochs": POS, "train.log_every_steps": POS,
    "train.eval_every_epochs": POS, "train.patience": NONNEG,
    "train.checkpoint_every_epochs": POS, "train.max_to_keep": POS,
    "train.checkpoint_every_secs": NONNEG, "train.max_steps_this_run": NONNEG,
    "train.max_train_secs": NONNEG,
    "train.init_from": ANY, "train.test_at_end": ANY,
    "train.input": REG, "train.steps_per_dispatch": POS, "train.length_grouping": NONNEG,
    "train.packing": ANY,
    # eval
    "eval.ks": Rule(each=POS, each_type=int, nonempty=True), "eval.batch_size": POS,
    "eval.exclude_seen": ANY, "eval.select_metric": Rule(nonempty=True),
    "eval.popularity_buckets": Rule(each=POS, each_type=int),
    # gan
    "gan.enabled": ANY, "gan.pretrained_dir": ANY, "gan.epochs": POS,
    "gan.eval_every_epochs": POS, "gan.patience": NONNEG, "gan.g_lr": POS_REAL,
    "gan.d_lr": POS_REAL, "gan.warmup_steps": NONNEG, "gan.d_steps": POS, "gan.g_steps": POS,
    "gan.estimator": Rule(choices=("reinforce", "gumbel")),
    "gan.baseline": Rule(choices=("ema", "learned", "none")), "gan.baseline_decay": RATE,
    "gan.tau_start": POS_REAL, "gan.tau_end": POS_REAL, "gan.tau_decay_steps": POS,
    "gan.mle_weight": NONNEG, "gan.noise_dim": POS,
    "gan.noise_mode": Rule(choices=("add", "concat")), "gan.noise_std": NONNEG,
    "gan.layout": Rule(choices=("continuation", "positions")), "gan.gen_len": POS,
    "gan.num_positions": NONNEG, "gan.d_head": Rule(choices=("cls", "dot")),
    "gan.recommender": Rule(choices=("generator", "discriminator")),
    "gan.d_embed_dim": POS, "gan.d_num_blocks": POS, "gan.d_num_heads": POS,
    "gan.d_mlp_dim": POS, "gan.d_dropout": RATE,
    # text
    "text.template": ANY, "text.path": ANY, "text.model": Rule(nonempty=True),
    "text.max_tokens": Rule(lo=3), "text.batch_size": POS, "text.normalize": ANY,
    # mesh
    "mesh.shape": Rule(each=Rule(lo=1, also=(-1,)), each_type=int, nonempty=True),
    "mesh.axes": Rule(each_type=str, nonempty=True), "mesh.coordinator": ANY,
    "mesh.num_processes": POS, "mesh.process_id": NONNEG,
}


def _named_choices(name: str, key: str) -> tuple:
  # pylint: disable=import-outside-toplevel (the registries import heavier modules)
  if name == "registry":
    from seqrec_jax import config as config_lib
    found = config_lib.choices().get(key)
    return None if found is None else tuple(found)
  if name == "formats":
    from seqrec_jax.data.sources import SOURCES
    return ("synthetic", "sequences") + tuple(sorted(SOURCES))
  if name == "downloads":
    from seqrec_jax.data import download
    return ("",) + tuple(sorted(download.ARCHIVES))
  raise KeyError(name)


def leaves(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
  """{dotted key: value} of every field (nested sections flattened)."""
  out = {}
  for k, v in cfg.items():
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      out.update(leaves(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _type_name(t: type) -> str:
  return {int: "an int", float: "a number", bool: "a bool", str: "a string",
          tuple: "a tuple"}.get(t, t.__name__)


def _type_ok(value: Any, t: type) -> bool:
  if t is bool:
    return isinstance(value, bool)
  if t is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if t is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if t is tuple:
    return isinstance(value, (tuple, list))
  return isinstance(value, t)


def _fmt(value: Any) -> str:
  return repr(tuple(value)) if isinstance(value, list) else repr(value)


def suggest(key: str, known: list[str]) -> str:
  """'; did you mean config.x.y?' for the closest known dotted key, else ''."""
  section = key.split(".")[0]
  pool = [k for k in known if k.split(".")[0] == section] or known
  close = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
  if not close:  # compare the last parts only ("lr" vs "optim.lr")
    tail = key.rsplit(".", 1)[-1]
    by_tail = {k.rsplit(".", 1)[-1]: k for k in known}
    close = [by_tail[t] for t in difflib.get_close_matches(tail, list(by_tail), n=1)]
  return f"; did you mean config.{close[0]}?" if close else ""


def unknown_key_message(key: str) -> str:
  """The message for a config key that base_config() does not have."""
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  known = sorted(leaves(config_lib.base_config()))
  sections = sorted({k.split(".")[0] for k in known if "." in k})
  head = key.split(".")[0]
  if "." in key and head not in sections:
    return (f"unknown config section config.{head} (in config.{key}); sections: "
            f"{', '.join(sections)}" + suggest(key, known))
  return f"unknown config key config.{key}" + suggest(key, known)


def check_value(key: str, value: Any, default: Any) -> None:
  """Raises ValueError naming `config.<key>` when `value` breaks its type or rule."""
  rule = RULES.get(key, ANY)
  where = f"config.{key}={_fmt(value)}"
  t = type(default) if default is not None else None
  if isinstance(default, list):
    t = tuple
  if t is not None and not _type_ok(value, t):
    raise ValueError(f"{where}: expected {_type_name(t)}, got {type(value).__name__}")
  if rule.choices is not None:
    allowed = (_named_choices(rule.choices, key) if isinstance(rule.choices, str)
               else rule.choices)
    if allowed is not None and value not in allowed:
      close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
      hint = f"; did you mean {close[0]!r}?" if close else ""
      raise ValueError(f"{where}: expected one of {list(allowed)}{hint}")
    return
  if rule.nonempty and not value and not isinstance(value, (int, float)):
    raise ValueError(f"{where}: must not be empty")
  if isinstance(value, (tuple, list)):
    for x in value:
      if rule.each_type is not None and not _type_ok(x, rule.each_type):
        raise ValueError(f"{where}: every element must be {_type_name(rule.each_type)}"
                         + (f" {rule.each.describe()}" if rule.each else ""))
      if rule.each is not None and not rule.each.contains(x):
        raise ValueError(f"{where}: every element must be {_type_name(rule.each_type or int)} "
                         f"{rule.each.describe()}, got {x!r}")
    return
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    if not rule.contains(value):
      raise ValueError(f"{where}: must be {rule.describe()}")


def check(cfg: ml_collections.ConfigDict) -> None:
  """Checks every field of `cfg` against its type and rule, and that it has no key
  base_config() lacks; raises ValueError naming the first bad key."""
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  defaults = leaves(config_lib.base_config())
  values = leaves(cfg)
  for key in values:
    if key not in defaults and not key.startswith("data.synthetic."):
      raise ValueError(unknown_key_message(key))
  for key, default in defaults.items():
    if key in values:
      check_value(key, values[key], default)
  syn = cfg.data.get("synthetic", None)
  if syn is not None and syn.get("min_len", 1) > syn.get("max_len", 1):
    raise ValueError(f"config.data.synthetic.min_len={syn.min_len} must be <= "
                     f"config.data.synthetic.max_len={syn.max_len}")
  if cfg.mesh.process_id >= cfg.mesh.num_processes:
    raise ValueError(f"config.mesh.process_id={cfg.mesh.process_id} must be < "
                     f"config.mesh.num_processes={cfg.mesh.num_processes}")


def missing_rules() -> list[str]:
  """Fields of base_config() without an entry in RULES (should be empty)."""
  from seqrec_jax import config as config_lib  # pylint: disable=import-outside-toplevel
  return sorted(set(leaves(config_lib.base_config())) - set(RULES))
