"""Tasks: what a training example holds and which objective scores it.

`build_task(cfg, model, split)` returns the pipeline source, the per-example map and
the loss, so the loop stays the same for every model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn

from seqrec_jax import config as config_lib
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import LeaveOneOut
from seqrec_jax.train import objectives


@dataclasses.dataclass
class Task:
  source: pipeline.TrainSequences
  example_fn: Callable
  loss_fn: objectives.LossFn


def build_task(cfg, model: nn.Module, split: LeaveOneOut) -> Task:
  name = config_lib.task_name(cfg)  # "auto" -> the model's own task
  cover = cfg.model.max_len if cfg.task.windows == "cover" else 0  # targets per window
  if name == "causal":
    return Task(source=pipeline.TrainSequences(split, cover_window=cover),
                example_fn=pipeline.CausalExample(cfg.model.max_len, cfg.task.crop),
                loss_fn=objectives.causal_loss(model, cfg.loss))
  if name == "cloze":
    return Task(source=pipeline.TrainSequences(split, cover_window=cover),
                example_fn=pipeline.ClozeExample(
                    cfg.model.max_len, mask_id=split.data.num_items + 1,
                    mask_prob=cfg.task.mask_prob, mask_last_prob=cfg.task.mask_last_prob,
                    crop=cfg.task.crop),
                loss_fn=objectives.cloze_loss(model, cfg.loss))
  if name == "seq2seq":
    return Task(source=pipeline.TrainSequences(split),
                example_fn=pipeline.Seq2SeqExample(cfg.model.max_len, cfg.task.future_k,
                                                   bos_id=split.data.num_items + 1),
                loss_fn=objectives.seq2seq_loss(model, cfg.loss))
  raise ValueError(f"task.name={name!r}: expected one of ['causal', 'cloze', 'seq2seq']")
