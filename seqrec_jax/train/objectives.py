"""Task losses: `loss_fn(params, batch, rng) -> (loss, aux)` for each task.

A task (`tasks.py`) pairs a pipeline example (what a batch holds) with one of these;
the next-item loss itself is the registered `losses.LOSSES[loss.name]`, and the train
step is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax

from seqrec_jax import losses
from seqrec_jax.data.time_features import split_tokens

LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]


def loss_denominator(batch: dict) -> jax.Array | None:
  """The fixed normaliser of a length-grouped batch: each row's `loss_norm` holds the
  mean targets per row of the dataset, so the sum is a batch's expected target count
  and every target weighs the same in short and long batches. None: the batch's own."""
  return batch["loss_norm"].sum() if "loss_norm" in batch else None


PACKING_KEYS = ("segment_ids", "positions")  # packed rows (data/packing.py)


def model_inputs(batch: dict) -> dict:
  """The optional model arguments a batch carries: `segment_ids` / `positions` [B, L]
  of packed rows (several histories per row), else nothing."""
  return {k: batch[k] for k in PACKING_KEYS if k in batch}


def gather_positions(module: nn.Module, ids: jax.Array, positions: jax.Array,
                     **kwargs) -> jax.Array:
  """States at `positions` [B, P] only -> [B, P, D]: picked inside the model before its
  output head when it takes `gather` (`gathers_positions = True`: BERT4Rec), else
  picked from every state."""
  if getattr(module, "gathers_positions", False):
    return module(ids, train=True, gather=positions, **kwargs)
  hidden = module(ids, train=True, **kwargs)  # [B, L, D]
  return jax.numpy.take_along_axis(hidden, positions[..., None], axis=1)


def table_inputs(module: nn.Module, targets: jax.Array, weights: jax.Array) -> dict:
  """The output table's arguments in training: the batch's real targets (0 elsewhere)
  for a model whose item table is partly recomputed per batch
  (`item_repr="text_finetune"`), else none."""
  if getattr(module, "item_repr", "id") != "text_finetune":
    return {}
  return {"batch_items": jax.numpy.where(weights > 0, targets, 0)}


def causal_loss(model: nn.Module, loss_cfg, prefix_seen: bool = True,
                stats: losses.LossStats | None = None) -> LossFn:
  """Next-item prediction at every position (SASRec). `prefix_seen`: the inputs before
  each position are what the user has seen there (for `loss.seen_margin`); `stats`:
  training statistics for the samplers of sampled losses.

  Packed batches (`segment_ids`, `positions`) pass through to the model; the loss is
  still the mean over the batch's real targets, so a packed batch holding the same
  histories as an unpacked one has the same loss and gradients. A batch with
  `masked_positions` (cloze with `task.max_predictions`) scores only those positions:
  `masked_targets` / `masked_weights` [B, P] replace targets / weights."""

  def loss_fn(params, batch, rng):
    dropout_rng, loss_rng = jax.random.split(rng)
    extra = model_inputs(batch)
    gathered = "masked_positions" in batch
    targets, weights = ((batch["masked_targets"], batch["masked_weights"]) if gathered
                        else (batch["targets"], batch["weights"]))

    def forward(module, ids):
      if gathered:
        hidden = gather_positions(module, ids, batch["masked_positions"], **extra)
      else:
        hidden = module(ids, train=True, **extra)
      return hidden, module.item_table(**table_inputs(module, targets, weights))

    hidden, table = model.apply({"params": params}, batch["inputs"], method=forward,
                                rngs={"dropout": dropout_rng})  # [B, L or P, D], [V, D]
    items = split_tokens(batch["inputs"])[0]  # [B, L] (inputs may carry time features)
    seen = items if prefix_seen and not gathered else None
    loss = losses.next_item_loss(hidden, table, targets, weights, loss_rng, loss_cfg,
                                 loss_denominator(batch), seen, stats)
    return loss, {"targets": weights.sum()}

  return loss_fn


def cloze_loss(model: nn.Module, loss_cfg, stats: losses.LossStats | None = None) -> LossFn:
  """BERT4Rec: predict the original items at the masked positions. The batch has the
  same layout as the causal task (inputs with masks applied, targets, weights), plus
  `masked_positions` / `masked_targets` / `masked_weights` [B, P] with
  `task.max_predictions` (then only those P positions reach the output layer)."""
  return causal_loss(model, loss_cfg, prefix_seen=False, stats=stats)


def seq2seq_loss(model: nn.Module, loss_cfg, stats: losses.LossStats | None = None) -> LossFn:
  """Encoder-decoder with teacher forcing: predict the next k items from the history.

  batch: history [B, L], dec_inputs [B, k] ([BOS] + future[:-1]), targets/weights [B, k].
  """

  def loss_fn(params, batch, rng):
    dropout_rng, loss_rng = jax.random.split(rng)

    def forward(module, history, dec_inputs):
      return (module(history, train=True, dec_inputs=dec_inputs),
              module.item_table(**table_inputs(module, batch["targets"], batch["weights"])))

    hidden, table = model.apply({"params": params}, batch["history"], batch["dec_inputs"],
                                method=forward, rngs={"dropout": dropout_rng})  # [B, k, D]
    loss = losses.next_item_loss(hidden, table, batch["targets"], batch["weights"], loss_rng,
                                 loss_cfg, loss_denominator(batch), stats=stats)
    return loss, {"targets": batch["weights"].sum()}

  return loss_fn
