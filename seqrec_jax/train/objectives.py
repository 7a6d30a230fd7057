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

LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]


def loss_denominator(batch: dict) -> jax.Array | None:
  """The fixed normaliser of a length-grouped batch: each row's `loss_norm` holds the
  mean targets per row of the dataset, so the sum is a batch's expected target count
  and every target weighs the same in short and long batches. None: the batch's own."""
  return batch["loss_norm"].sum() if "loss_norm" in batch else None


def causal_loss(model: nn.Module, loss_cfg, prefix_seen: bool = True,
                stats: losses.LossStats | None = None) -> LossFn:
  """Next-item prediction at every position (SASRec). `prefix_seen`: the inputs before
  each position are what the user has seen there (for `loss.seen_margin`); `stats`:
  training statistics for the samplers of sampled losses."""

  def loss_fn(params, batch, rng):
    dropout_rng, loss_rng = jax.random.split(rng)

    def forward(module, ids):
      return module(ids, train=True), module.item_table()

    hidden, table = model.apply({"params": params}, batch["inputs"], method=forward,
                                rngs={"dropout": dropout_rng})  # [B, L, D], [V, D]
    loss = losses.next_item_loss(hidden, table, batch["targets"], batch["weights"], loss_rng,
                                 loss_cfg, loss_denominator(batch),
                                 batch["inputs"] if prefix_seen else None, stats)
    return loss, {"targets": batch["weights"].sum()}

  return loss_fn


def cloze_loss(model: nn.Module, loss_cfg, stats: losses.LossStats | None = None) -> LossFn:
  """BERT4Rec: predict the original items at the masked positions. The batch has the
  same layout as the causal task (inputs with masks applied, targets, weights)."""
  return causal_loss(model, loss_cfg, prefix_seen=False, stats=stats)


def seq2seq_loss(model: nn.Module, loss_cfg, stats: losses.LossStats | None = None) -> LossFn:
  """Encoder-decoder with teacher forcing: predict the next k items from the history.

  batch: history [B, L], dec_inputs [B, k] ([BOS] + future[:-1]), targets/weights [B, k].
  """

  def loss_fn(params, batch, rng):
    dropout_rng, loss_rng = jax.random.split(rng)

    def forward(module, history, dec_inputs):
      return module(history, train=True, dec_inputs=dec_inputs), module.item_table()

    hidden, table = model.apply({"params": params}, batch["history"], batch["dec_inputs"],
                                method=forward, rngs={"dropout": dropout_rng})  # [B, k, D]
    loss = losses.next_item_loss(hidden, table, batch["targets"], batch["weights"], loss_rng,
                                 loss_cfg, loss_denominator(batch), stats=stats)
    return loss, {"targets": batch["weights"].sum()}

  return loss_fn
