"""Optimizer from config: AdamW with linear warm-up, cosine (or no) decay, clipping,
and optionally an exponential moving average of the parameters for evaluation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from seqrec_jax.models import text_finetune


def learning_rate_schedule(cfg, total_steps: int) -> optax.Schedule:
  warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
  if cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, warmup, max(total_steps, warmup + 1), end_value=cfg.lr * cfg.final_lr_frac)
  if cfg.schedule == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.lr, max(warmup, 1)), optax.constant_schedule(cfg.lr)],
        [warmup])
  raise ValueError(f"optim.schedule={cfg.schedule!r}: expected 'cosine' or 'constant'")


class ParamsEmaState(NamedTuple):
  count: jax.Array  # [] int32 updates averaged so far
  ema: Any  # like params


def params_ema(decay: float) -> optax.GradientTransformation:
  """Keeps `ema`, a moving average of the parameters after each update; passes the
  updates through unchanged. The effective decay is min(decay, (1 + t) / (10 + t)), so
  early averages are not dominated by the initial parameters. Place it last in a chain."""

  def init(params):
    return ParamsEmaState(count=jnp.zeros((), jnp.int32), ema=jax.tree.map(jnp.copy, params))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("params_ema needs params: call tx.update(grads, state, params)")
    t = state.count.astype(jnp.float32)
    d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
    new = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p.astype(e.dtype), state.ema, new)
    return updates, ParamsEmaState(count=state.count + 1, ema=ema)

  return optax.GradientTransformation(init, update)


def eval_params(params: Any, opt_state: Any) -> Any:
  """The parameters to evaluate and keep: the moving average when the optimizer keeps
  one (`optim.ema_decay` > 0), else `params`. Under `multi_transform` (text_finetune)
  each group keeps its own average, with `MaskedNode` where another group owns a leaf;
  the averages are merged, and a leaf no group averages (a frozen one) is `params`'."""
  is_ema = lambda x: isinstance(x, ParamsEmaState)
  emas = [s.ema for s in jax.tree.leaves(opt_state, is_leaf=is_ema) if is_ema(s)]
  if not emas:
    return params
  is_masked = lambda x: isinstance(x, optax.MaskedNode)
  merged = params
  for ema in emas:
    merged = jax.tree.map(lambda e, p: p if is_masked(e) else e, ema, merged, is_leaf=is_masked)
  return merged


def is_frozen(path) -> bool:
  """A parameter the optimizer never changes: `frozen_*` (text tables and token states,
  models/item_repr.py and models/text_finetune.py)."""
  return any(str(getattr(k, "key", "")).startswith("frozen_") for k in path)


def build_optimizer(cfg, total_steps: int, skip_frozen: bool = False,
                    encoder_lr_scale: float = 1.0) -> optax.GradientTransformation:
  """Clip by global norm, then AdamW; weight decay applies to matrices only (never to a
  frozen text table, whose gradient is stopped, so it stays exactly as loaded). With
  `ema_decay` > 0 the state also keeps a parameter average (`eval_params`).

  `skip_frozen` (text_finetune): the frozen parameters get no optimizer state at all
  (the token states are hundreds of MB; Adam moments for them would triple that), and
  the pretrained encoder layers (`text_layers`) their own AdamW at `encoder_lr_scale`
  times the learning rate (pretrained transformers are fine-tuned with far smaller steps
  than a freshly initialised recommender needs); each group is clipped on its own."""
  def decay_mask(params):  # matrices, except frozen tables (models/item_repr.py)
    return jax.tree_util.tree_map_with_path(lambda path, p: p.ndim >= 2 and not is_frozen(path),
                                            params)

  def chain(lr_scale: float) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(cfg, total_steps)
    lr = schedule if lr_scale == 1.0 else (lambda step: lr_scale * schedule(step))
    parts = [optax.clip_by_global_norm(cfg.clip_norm),
             optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                         mask=decay_mask)]
    ema_decay = cfg.get("ema_decay", 0.0)
    if ema_decay:
      if not 0.0 < ema_decay < 1.0:
        raise ValueError(f"config.optim.ema_decay={ema_decay!r} must be in [0, 1)")
      parts.append(params_ema(ema_decay))
    return optax.chain(*parts)

  if not skip_frozen:
    return chain(1.0)

  def label(path, _):
    if is_frozen(path):
      return "frozen"
    return "encoder" if any(getattr(k, "key", None) == text_finetune.TOP for k in path) else "train"
  labels = lambda params: jax.tree_util.tree_map_with_path(label, params)
  return optax.multi_transform({"train": chain(1.0), "encoder": chain(encoder_lr_scale),
                                "frozen": optax.set_to_zero()}, labels)
