"""The training loop: epochs of jitted steps, validation, best-model selection,
resumable checkpoints, and one final test evaluation of the model picked on validation.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from seqrec_jax import config as config_lib
from seqrec_jax import metrics, models, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.train import checkpoint, optim, steps, tasks
from seqrec_jax.train.state import TrainState, abstract_state, create_train_state


class NonFiniteLossError(FloatingPointError):
  pass


def _fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class MetricsWriter:
  """Appends one JSON object per line to `<workdir>/metrics.jsonl` (process 0 only)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.enabled = jax.process_index() == 0

  def write(self, record: dict) -> None:
    if self.enabled:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")


def save_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  text = cfg.to_json_best_effort(indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() != text:
        logging.warning("config differs from the one saved in %s; resuming with the new one", path)
  if jax.process_index() == 0:
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` was started with, as a full base config."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is --workdir a training run's workdir?")
  with open(path) as f:
    saved = json.load(f)
  cfg = config_lib.base_config()
  cfg.update_from_flattened_dict(_flatten(saved))
  return cfg


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict) and k != "synthetic":
      out.update(_flatten(v, key + "."))
    else:
      out[key] = tuple(v) if isinstance(v, list) else v
  return out


def evaluate_stage(rank_fn, params: Any, arrays: pipeline.EvalArrays, batch_size: int,
                   mesh, ks) -> dict[str, float]:
  """Full-ranking metrics of one stage ('excl/' = history items excluded)."""
  sharding = parallel.batch_sharding(mesh)
  n = len(arrays)
  ranks, ranks_excl = [], []
  per_proc = batch_size // jax.process_count()
  for start in range(0, n, batch_size):
    rows = np.arange(start, start + batch_size)
    valid = rows < n
    rows = np.where(valid, rows, 0)
    lo = jax.process_index() * per_proc
    local = rows[lo:lo + per_proc]
    batch = parallel.to_global({"h": arrays.history[local], "t": arrays.targets[local],
                                "s": arrays.seen[local]}, sharding)
    out = rank_fn(params, batch["h"], batch["t"], batch["s"])
    if jax.process_count() > 1:
      out = multihost_utils.process_allgather(out, tiled=True)
    ranks.append(np.asarray(out["rank"])[valid])
    ranks_excl.append(np.asarray(out["rank_excl"])[valid])
  result = metrics.summarize(np.concatenate(ranks), ks)
  result.update({f"excl/{k}": v for k, v in
                 metrics.summarize(np.concatenate(ranks_excl), ks).items()})
  result["users"] = n
  return result


def _selection_value(result: dict, cfg) -> float:
  prefix = "excl/" if cfg.eval.exclude_seen else ""
  return result[prefix + cfg.eval.select_metric]


def train_and_evaluate(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (or resumes) the configured model in `workdir`; returns the final report."""
  config_lib.validate(cfg)
  parallel.maybe_initialize_distributed(cfg.mesh.coordinator, cfg.mesh.num_processes,
                                        cfg.mesh.process_id)
  os.makedirs(workdir, exist_ok=True)
  save_config(cfg, workdir)
  writer = MetricsWriter(workdir)

  # ---- Data --------------------------------------------------------------------------
  t0 = time.time()
  dataset = load_dataset(cfg.data)
  split = leave_one_out(dataset)
  logging.info("data: %d users, %d items, %d interactions (%.1fs); report %s",
               dataset.num_users, dataset.num_items, dataset.items.size, time.time() - t0,
               json.dumps(dataset.report))
  print(f"data: {dataset.num_users} users, {dataset.num_items} items, "
        f"{dataset.items.size} interactions", flush=True)

  # ---- Mesh, model, optimizer, state ---------------------------------------------------
  mesh = parallel.make_mesh(cfg.mesh.shape, cfg.mesh.axes)
  if cfg.train.batch_size % mesh.shape["data"] or cfg.eval.batch_size % mesh.shape["data"]:
    raise ValueError(f"config.train.batch_size={cfg.train.batch_size} and config.eval.batch_size="
                     f"{cfg.eval.batch_size} must be divisible by the data axis ({mesh.shape['data']})")
  model = models.build_model(cfg.model, dataset.num_items)
  task = tasks.build_task(cfg, model, split)
  steps_per_epoch = max(1, len(task.source) // cfg.train.batch_size)
  total_steps = steps_per_epoch * cfg.train.num_epochs
  tx = optim.build_optimizer(cfg.optim, total_steps)
  dummy = np.zeros((1, cfg.model.max_len), np.int32)
  init_params = lambda rng: model.init({"params": rng, "dropout": rng}, dummy)["params"]
  state, state_sh = create_train_state(init_params, tx, cfg.seed, mesh)

  train_iter = iter(pipeline.train_dataset(
      task.source, task.example_fn, global_batch=cfg.train.batch_size, seed=cfg.seed,
      process_index=jax.process_index(), process_count=jax.process_count()))

  # ---- Resume ----------------------------------------------------------------------------
  ckpts = checkpoint.Checkpoints(workdir, cfg.train.max_to_keep)
  meta = {"best_value": -math.inf, "best_step": -1, "bad_evals": 0, "stopped_early": False}
  restored = ckpts.restore_latest(abstract_state(state_sh, state), train_iter)
  if restored is not None:
    state, meta = restored
    print(f"resumed from step {int(state.step)} ({workdir}/checkpoints)", flush=True)

  train_step = steps.jit_train_step(task.loss_fn, tx, state_sh, mesh)
  rank_fn = steps.jit_rank_step(model, dataset.num_items, state_sh.params, mesh)
  valid_arrays = pipeline.eval_arrays(split, "valid", cfg.model.max_len)
  batch_sh = parallel.batch_sharding(mesh)

  # ---- Train loop ------------------------------------------------------------------------
  step = int(state.step)
  start_step, start_time = step, time.time()
  window_time, window_steps = time.time(), 0
  done = meta["stopped_early"] or step >= total_steps
  while not done:
    batch = parallel.to_global(next(train_iter), batch_sh)
    state, train_metrics = train_step(state, batch)
    step += 1
    window_steps += 1
    epoch_end = step % steps_per_epoch == 0
    if step % cfg.train.log_every_steps == 0 or epoch_end or step == total_steps:
      m = jax.device_get(train_metrics)
      if not np.isfinite(m["loss"]):
        raise NonFiniteLossError(
            f"loss is {m['loss']} at step {step} (grad_norm {m['grad_norm']}); stopping. "
            f"Lower config.optim.lr or set config.model.dtype='float32'. The last good "
            f"checkpoint is in {workdir}/checkpoints.")
      now = time.time()
      rate = window_steps / max(now - window_time, 1e-9)
      eta = (total_steps - step) / max((step - start_step) / max(now - start_time, 1e-9), 1e-9)
      tps = float(m["targets"]) * rate
      print(f"epoch {math.ceil(step / steps_per_epoch)}/{cfg.train.num_epochs} "
            f"step {step}/{total_steps} loss {float(m['loss']):.4f} | {rate:.2f} steps/s "
            f"{tps:,.0f} targets/s | ETA {_fmt_time(eta)}", flush=True)
      writer.write({"kind": "train", "step": step, "loss": float(m["loss"]),
                    "grad_norm": float(m["grad_norm"]), "steps_per_s": rate,
                    "targets_per_s": tps, "time": now - start_time})
      window_time, window_steps = now, 0
    if not epoch_end and step < total_steps:
      continue
    epoch = step // steps_per_epoch
    last = step >= total_steps
    if epoch % cfg.train.eval_every_epochs == 0 or last:
      result = evaluate_stage(rank_fn, state.params, valid_arrays, cfg.eval.batch_size, mesh,
                              cfg.eval.ks)
      value = _selection_value(result, cfg)
      improved = value > meta["best_value"]
      if improved:
        meta.update(best_value=value, best_step=step, bad_evals=0)
        ckpts.save_best(step, state.params, {"step": step, "epoch": epoch, "valid": result})
      else:
        meta["bad_evals"] += 1
      print(f"valid epoch {epoch}: {cfg.eval.select_metric} {result[cfg.eval.select_metric]:.4f} "
            f"hr@10 {result['hr@10']:.4f} (excl: {result['excl/' + cfg.eval.select_metric]:.4f})"
            f"{'  *best*' if improved else ''}", flush=True)
      writer.write({"kind": "valid", "step": step, "epoch": epoch, **result})
      if cfg.train.patience and meta["bad_evals"] >= cfg.train.patience:
        meta["stopped_early"] = True
        print(f"early stop: no improvement in {cfg.train.patience} evaluations", flush=True)
    if epoch % cfg.train.checkpoint_every_epochs == 0 or last or meta["stopped_early"]:
      ckpts.save(step, state, train_iter, meta)
    done = last or meta["stopped_early"]

  ckpts.wait()
  train_seconds = time.time() - start_time

  # ---- Test: once, for the model picked on validation -------------------------------------
  best_params, best_meta = ckpts.restore_best(
      abstract_state(state_sh.params, state.params))
  test_arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
  test = evaluate_stage(rank_fn, best_params, test_arrays, cfg.eval.batch_size, mesh, cfg.eval.ks)
  report = {"best_step": best_meta["step"], "best_epoch": best_meta["epoch"],
            "valid": best_meta["valid"], "test": test, "train_seconds": train_seconds,
            "num_items": dataset.num_items, "num_users": dataset.num_users}
  writer.write({"kind": "test", "step": best_meta["step"], **test})
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "final.json"), "w") as f:
      json.dump(report, f, indent=2)
  print(f"test (best valid step {best_meta['step']}): ndcg@10 {test['ndcg@10']:.4f} "
        f"hr@10 {test['hr@10']:.4f} | exclude_seen: ndcg@10 {test['excl/ndcg@10']:.4f} "
        f"hr@10 {test['excl/hr@10']:.4f}", flush=True)
  ckpts.close()
  return report
