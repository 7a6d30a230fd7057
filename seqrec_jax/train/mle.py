"""The "mle" objective: maximum likelihood of the configured task (next item, cloze,
seq2seq) with one optimizer, on the Grain path or the device-resident path."""

from __future__ import annotations

import jax
from jax.sharding import Mesh

from seqrec_jax.data import device_data
from seqrec_jax.data.dataset import LeaveOneOut
from seqrec_jax.models import text_finetune
from seqrec_jax.train import optim, steps
from seqrec_jax.train import setup as setup_lib
from seqrec_jax.train.engine import OBJECTIVES, Objective


def _log_line(r: dict) -> str:
  tps = f" {r['targets_per_s']:,.0f} targets/s" if "targets_per_s" in r else ""
  return f"loss {r['loss']:.4f}{tps}"


@OBJECTIVES.register("mle")
def build(cfg, split: LeaveOneOut, mesh: Mesh, workdir: str) -> Objective:
  """State, jitted step (or device-path chunk) and recommender of an MLE run."""
  del workdir
  s = setup_lib.build_setup(cfg, split, mesh)
  chunk = None
  if cfg.train.input == "device":  # whole dataset + every epoch's order uploaded once
    packed = s.task.source if hasattr(s.task.source, "template") else None  # train.packing
    data = device_data.build_causal_data(
        split, s.task.source.users, max_len=cfg.model.max_len, batch_size=cfg.train.batch_size,
        num_steps=s.total_steps, seed=cfg.seed, crop=cfg.task.crop, mesh=mesh,
        process_count=jax.process_count(), packed=packed)
    train_chunk = steps.TrainSteps(s.task.loss_fn, s.tx, s.state_sh, mesh,
                                   device_data.causal_batch)
    chunk = lambda state, n: train_chunk(state, data, n)

  on_fresh_start = None
  if cfg.train.init_from:  # begin from another run's latest state (item tables may grow)
    from seqrec_jax.train import warm_start  # pylint: disable=import-outside-toplevel
    on_fresh_start = lambda state: warm_start.warm_start(
        state, s.state_sh, cfg.train.init_from, s.model, cfg.model.max_len, s.tx, mesh)

  on_epoch_end, refresh_average = None, None
  if cfg.model.item_repr == "text_finetune":  # the item table from the trained encoder layers
    refresh = refresh_text_table(s.model, s.state_sh)
    on_epoch_end = lambda state: state.replace(params=refresh(state.params))
    refresh_average = refresh_text_table(s.model, s.state_sh, donate=False)

  def eval_params(state):
    params = optim.eval_params(state.params, state.opt_state)  # the average, if kept
    if params is state.params:
      return params, None
    if refresh_average is not None:  # the average's table comes from the average's encoder
      params = refresh_average(params)
    return params, state.params

  def log_fields(state, m):
    del state
    return {"loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]),
            "targets": float(m["targets"])}

  return Objective(
      state=s.state, state_sh=s.state_sh,
      step=steps.jit_train_step(s.task.loss_fn, s.tx, s.state_sh, mesh),
      source=s.task.source, example_fn=s.task.example_fn,
      steps_per_epoch=s.steps_per_epoch, total_steps=s.total_steps,
      num_epochs=cfg.train.num_epochs, eval_every_epochs=cfg.train.eval_every_epochs,
      patience=cfg.train.patience, rank_model=s.model, rank_params_sh=s.state_sh.params,
      eval_params=eval_params, log_fields=log_fields, log_line=_log_line,
      data_seed=cfg.seed, group_batches=cfg.train.length_grouping, chunk=chunk,
      on_fresh_start=on_fresh_start, on_epoch_end=on_epoch_end)


def refresh_text_table(model, state_sh, donate: bool = True):
  """Jitted params -> params with every `frozen_text` cache row recomputed by the
  current text encoder layers (`item_repr="text_finetune"`, models/text_finetune.py).
  `donate=False` where the input shares buffers that must live on (a merged average)."""
  def refresh(params):
    table = model.apply({"params": params},
                        method=lambda m: m.item_embedding.refresh_text())  # [rows, H]
    cache = [text_finetune.NAME, text_finetune.CACHE]  # the path's last two keys

    def put(path, leaf):
      keys = [getattr(k, "key", None) for k in path]
      return table.astype(leaf.dtype) if keys[-2:] == cache else leaf
    return jax.tree_util.tree_map_with_path(put, params)
  return jax.jit(refresh, in_shardings=(state_sh.params,), out_shardings=state_sh.params,
                 donate_argnums=0 if donate else ())
