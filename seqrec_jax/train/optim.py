"""Optimizer from config: AdamW with linear warm-up, cosine (or no) decay, clipping."""

from __future__ import annotations

import jax
import optax


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


def build_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
  """Clip by global norm, then AdamW; weight decay applies to matrices only."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
  return optax.chain(
      optax.clip_by_global_norm(cfg.clip_norm),
      optax.adamw(learning_rate_schedule(cfg, total_steps), b1=cfg.b1, b2=cfg.b2,
                  weight_decay=cfg.weight_decay, mask=decay_mask))
