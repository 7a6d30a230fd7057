"""Tasks: what a training example holds and which objective scores it.

Each task is a builder registered by name (`@TASKS.register("name")`):
`build(cfg, model, split) -> Task` returns the pipeline source, the per-example map
and the loss, so the engine is the same for every model. A model names the tasks
that train it in its registration (`models.register_model(tasks=...)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from seqrec_jax import config as config_lib
from seqrec_jax import losses, samplers
from seqrec_jax.data import packing, pipeline
from seqrec_jax.data.dataset import LeaveOneOut
from seqrec_jax.registry import Registry
from seqrec_jax.train import objectives

TASKS: Registry = Registry("task")


@dataclasses.dataclass
class Task:
  source: pipeline.TrainSequences | packing.PackedSequences  # packed with train.packing
  example_fn: Callable
  loss_fn: objectives.LossFn


def loss_stats(cfg, split: LeaveOneOut) -> losses.LossStats | None:
  """The training statistics the loss needs: item frequencies for the samplers that use
  them, the cold items (never a negative), else None (so nothing catalogue-sized is
  baked into the step when nothing uses it)."""
  needs_freq = cfg.loss.name != "ce" and samplers.SAMPLERS.meta(cfg.loss.sampler).get(
      "needs_frequencies")
  if not needs_freq and split.cold is None:
    return None
  return losses.LossStats(
      log_freq=jnp.asarray(samplers.item_log_frequencies(split)) if needs_freq else None,
      alpha=cfg.loss.pop_alpha,
      never_negative=None if split.cold is None else jnp.asarray(split.cold))


def _cover(cfg) -> int:
  """Targets per window when `task.windows='cover'` (several windows per history)."""
  return cfg.model.max_len if cfg.task.windows == "cover" else 0


def _source(cfg, split: LeaveOneOut, example_fn):
  """The training sequences; with `train.packing`, seen as packed rows of max_len
  (several short histories per row, `data/packing.py`)."""
  source = pipeline.TrainSequences(split, cover_window=_cover(cfg))
  if not cfg.train.get("packing", False):
    return source
  return packing.PackedSequences(source, example_fn.window_lengths(source.lengths),
                                 cfg.model.max_len)


@TASKS.register("causal")
def causal_task(cfg, model: nn.Module, split: LeaveOneOut) -> Task:
  """Next-item prediction at every position (SASRec, GRU4Rec, HSTU)."""
  example_fn = pipeline.CausalExample(cfg.model.max_len, cfg.task.crop)
  return Task(source=_source(cfg, split, example_fn), example_fn=example_fn,
              loss_fn=objectives.causal_loss(model, cfg.loss, stats=loss_stats(cfg, split)))


@TASKS.register("cloze")
def cloze_task(cfg, model: nn.Module, split: LeaveOneOut) -> Task:
  """Masked-item prediction (BERT4Rec); the mask token is item `num_items + 1`. With
  `task.max_predictions` only that many masked positions per row reach the output layer."""
  example_fn = pipeline.ClozeExample(
      cfg.model.max_len, mask_id=split.data.num_items + 1, mask_prob=cfg.task.mask_prob,
      mask_last_prob=cfg.task.mask_last_prob, crop=cfg.task.crop,
      max_predictions=cfg.task.get("max_predictions", 0))
  return Task(source=_source(cfg, split, example_fn), example_fn=example_fn,
              loss_fn=objectives.cloze_loss(model, cfg.loss, loss_stats(cfg, split)))


@TASKS.register("seq2seq")
def seq2seq_task(cfg, model: nn.Module, split: LeaveOneOut) -> Task:
  """(history, next `task.future_k` items) cut at random points (or, with
  `task.windows='every_cut'`, at every point once per epoch), teacher forcing."""
  source = (pipeline.CutSequences(split) if cfg.task.windows == "every_cut"
            else pipeline.TrainSequences(split))
  return Task(source=source,
              example_fn=pipeline.Seq2SeqExample(cfg.model.max_len, cfg.task.future_k,
                                                 bos_id=split.data.num_items + 1),
              loss_fn=objectives.seq2seq_loss(model, cfg.loss, loss_stats(cfg, split)))


def build_task(cfg, model: nn.Module, split: LeaveOneOut) -> Task:
  """The configured task ("auto" -> the model's own)."""
  return TASKS.get(config_lib.task_name(cfg))(cfg, model, split)
