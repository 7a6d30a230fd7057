"""Generation for one user of a trained run, by raw user id (the `generate` CLI's work):
full history as the prefix, the best checkpoint, item titles where the data has them."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from seqrec_jax import config as config_lib
from seqrec_jax.data.pipeline import right_pad
from seqrec_jax.data.sources import read_item_titles
from seqrec_jax.infer.generate import GenerateConfig, make_generate_fn
from seqrec_jax.infer.restore import restore


def _find_user(user_ids, raw: str) -> int:
  matches = [i for i, u in enumerate(user_ids.tolist()) if str(u) == raw]
  if not matches:
    raise KeyError(f"user {raw!r} not found ({len(user_ids)} users in the data)")
  return matches[0]


def _titles(path: str) -> dict:
  if not path or not os.path.exists(path):
    return {}
  return read_item_titles(path, on_error="skip")


def generate_for_user(workdir: str, user: str, cfg: GenerateConfig, seed: int = 0) -> dict:
  """Loads the run and generates for one raw user id; returns a JSON-able dict."""
  run = restore(workdir)
  data = run.dataset
  u = _find_user(data.user_ids, user)
  seq = data.sequence(u)  # full history, oldest first
  if run.cfg.model.name == "seq2seq" and cfg.steps > run.cfg.task.future_k:
    logging.warning("steps=%d > task.future_k=%d: decoder positions beyond %d were not "
                    "trained", cfg.steps, run.cfg.task.future_k, run.cfg.task.future_k)
  history = right_pad(seq, run.cfg.model.max_len)[None]  # [1, L]
  params = jax.device_get(run.params)
  fn = make_generate_fn(run.model, cfg)
  out = jax.device_get(fn(params, history, seq[None].astype(np.int32), jax.random.PRNGKey(seed)))
  titles = _titles(config_lib.data_path(run.cfg.data, "titles_path"))

  def describe(item: int) -> dict:
    raw = data.item_ids[item]
    raw = raw.item() if hasattr(raw, "item") else raw
    entry = {"item": raw}
    if titles:
      entry["title"] = titles.get(raw, titles.get(str(raw), ""))
    return entry

  return {"user": user, "model": run.cfg.model.name, "best_step": run.meta["step"],
          "history_length": int(seq.size),
          "history_tail": [describe(int(i)) for i in seq[-5:]],
          "method": cfg.method,
          "sequences": [{"score": float(out.scores[0, w]),
                         "items": [describe(int(i)) for i in out.items[0, w]]}
                        for w in range(out.items.shape[1])]}
