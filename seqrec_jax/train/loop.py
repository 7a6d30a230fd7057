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
from seqrec_jax import metrics, parallel
from seqrec_jax.data import device_data, pipeline
from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.train import checkpoint, optim, steps
from seqrec_jax.train import setup as setup_lib
from seqrec_jax.train.state import abstract_state


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


class Progress:
  """Console progress with rate and ETA; returns the record for metrics.jsonl."""

  def __init__(self, total_steps: int, steps_per_epoch: int, num_epochs: int, start_step: int):
    self.total_steps, self.steps_per_epoch, self.num_epochs = total_steps, steps_per_epoch, num_epochs
    self.start_step = self._last_step = start_step
    self.start_time = self._last_time = time.time()

  def elapsed(self) -> float:
    return time.time() - self.start_time

  def report(self, step: int, m: dict) -> dict:
    now = time.time()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    overall = (step - self.start_step) / max(now - self.start_time, 1e-9)
    eta = (self.total_steps - step) / max(overall, 1e-9)
    tps = float(m["targets"]) * rate
    print(f"epoch {math.ceil(step / self.steps_per_epoch)}/{self.num_epochs} "
          f"step {step}/{self.total_steps} loss {float(m['loss']):.4f} | {rate:.2f} steps/s "
          f"{tps:,.0f} targets/s | ETA {_fmt_time(eta)}", flush=True)
    self._last_step, self._last_time = step, now
    return {"step": step, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]),
            "steps_per_s": rate, "targets_per_s": tps, "time": self.elapsed()}


def _chunk_row(stacked: dict, first_step: int) -> tuple[dict, int]:
  """The metrics of a device-path chunk ([n] each) to report: the first non-finite
  step's if any (for the NaN guard), else the last. -> (row, its step number)."""
  bad = ~(np.isfinite(stacked["loss"]) & np.isfinite(stacked["grad_norm"]))  # [n]
  row = int(np.argmax(bad)) if bad.any() else bad.size - 1
  return {k: v[row] for k, v in stacked.items()}, first_step + row + 1


def check_finite(m: dict, step: int, workdir: str) -> None:
  """The NaN/Inf guard: stops the run before a bad state can be checkpointed."""
  if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
    raise NonFiniteLossError(
        f"loss is {m['loss']} (grad_norm {m['grad_norm']}) at step {step}; stopping. "
        f"Lower config.optim.lr or use config.model.dtype='float32'. The last good "
        f"checkpoint is in {workdir}/checkpoints.")


def update_selection(meta: dict, result: dict, step: int, cfg) -> bool:
  """Best-on-validation bookkeeping and early stopping; True when `result` is the new best."""
  value = _selection_value(result, cfg)
  improved = value > meta["best_value"]
  if improved:
    meta.update(best_value=value, best_step=step, bad_evals=0)
  else:
    meta["bad_evals"] += 1
  metric = cfg.eval.select_metric
  raw = f" (raw params {result['raw/' + metric]:.4f})" if "raw/" + metric in result else ""
  print(f"valid step {step}: {metric} {result[metric]:.4f}{raw} hr@10 {result['hr@10']:.4f} "
        f"(exclude_seen {metric} {result['excl/' + metric]:.4f}){'  *best*' if improved else ''}",
        flush=True)
  if cfg.train.patience and meta["bad_evals"] >= cfg.train.patience:
    meta["stopped_early"] = True
    print(f"early stop: no improvement in {cfg.train.patience} evaluations", flush=True)
  return improved


def restore_or_start(ckpts: checkpoint.Checkpoints, state: Any, state_sh: Any,
                     data_iter: Any | None) -> tuple[Any, dict, bool]:
  """(state, loop bookkeeping, resumed?): the newest restorable checkpoint, else a start.

  `data_iter` (a fresh iterator, or None on the device path) is advanced in place.
  """
  meta = {"best_value": -math.inf, "best_step": -1, "bad_evals": 0, "stopped_early": False}
  restored = ckpts.restore_latest(abstract_state(state_sh, state), data_iter)
  if restored is None:
    return state, meta, False
  return restored[0], restored[1], True


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
  split = leave_one_out(dataset, cfg.data.leave_last_k)
  logging.info("data: %d users, %d items, %d interactions (%.1fs); report %s",
               dataset.num_users, dataset.num_items, dataset.items.size, time.time() - t0,
               json.dumps(dataset.report))
  print(f"data: {dataset.num_users} users, {dataset.num_items} items, "
        f"{dataset.items.size} interactions ({time.time() - t0:.1f}s)", flush=True)
  dropped = ("malformed", "missing_ids", "below_min_rating", "duplicate_rows", "dedup_dropped",
             "kcore_dropped", "users_dropped")
  print("data report: " + ", ".join(f"{k}: {dataset.report.get(k, 0)}" for k in dropped)
        + f" (cache {dataset.report.get('cache', 'off')})", flush=True)

  # ---- Mesh, model, optimizer, state ---------------------------------------------------
  setup = setup_lib.build_setup(cfg, split)
  mesh, model, task, tx = setup.mesh, setup.model, setup.task, setup.tx
  state, state_sh = setup.state, setup.state_sh
  steps_per_epoch, total_steps = setup.steps_per_epoch, setup.total_steps

  on_device = cfg.train.input == "device"  # the device path has no iterator: it resumes from state.step
  train_iter = None if on_device else iter(pipeline.train_dataset(
      task.source, task.example_fn, global_batch=cfg.train.batch_size, seed=cfg.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      group_batches=cfg.train.length_grouping))

  # ---- Resume ----------------------------------------------------------------------------
  ckpts = checkpoint.Checkpoints(workdir, cfg.train.max_to_keep)
  state, meta, resumed = restore_or_start(ckpts, state, state_sh, train_iter)
  if resumed:
    print(f"resumed from step {int(state.step)} ({workdir}/checkpoints)", flush=True)

  train_step = steps.jit_train_step(task.loss_fn, tx, state_sh, mesh)
  rank_fn = steps.jit_rank_step(model, dataset.num_items, state_sh.params, mesh)
  valid_arrays = pipeline.eval_arrays(split, "valid", cfg.model.max_len)
  batch_sh = parallel.batch_sharding(mesh)
  if on_device:  # whole dataset + every epoch's order uploaded once; batches built in the step
    train_data = device_data.build_causal_data(
        split, task.source.users, max_len=cfg.model.max_len, batch_size=cfg.train.batch_size,
        num_steps=total_steps, seed=cfg.seed, crop=cfg.task.crop, mesh=mesh,
        process_count=jax.process_count())
    train_chunk = steps.TrainSteps(task.loss_fn, tx, state_sh, mesh, device_data.causal_batch)

  # ---- Train loop ------------------------------------------------------------------------
  step = int(state.step)
  progress = Progress(total_steps, steps_per_epoch, cfg.train.num_epochs, step)
  done = meta["stopped_early"] or step >= total_steps
  while not done:
    prev = step
    if on_device:  # one dispatch of up to steps_per_dispatch steps, never past an epoch end
      n = min(cfg.train.steps_per_dispatch, steps_per_epoch - step % steps_per_epoch,
              total_steps - step)
      if cfg.train.max_steps_this_run:
        n = min(n, cfg.train.max_steps_this_run - (step - progress.start_step))
      state, train_metrics = train_chunk(state, train_data, n)  # metrics: [n] each
      step += n
    else:
      batch = parallel.to_global(next(train_iter), batch_sh)
      state, train_metrics = train_step(state, batch)
      step += 1
    epoch_end = step % steps_per_epoch == 0
    last = step >= total_steps
    if step // cfg.train.log_every_steps > prev // cfg.train.log_every_steps or epoch_end or last:
      m = jax.device_get(train_metrics)
      if on_device:
        m, step_of_m = _chunk_row(m, prev)
        check_finite(m, step_of_m, workdir)
      else:
        check_finite(m, step, workdir)
      writer.write({"kind": "train", **progress.report(step, m)})
    if epoch_end or last:
      epoch = step // steps_per_epoch
      if epoch % cfg.train.eval_every_epochs == 0 or last:
        params = optim.eval_params(state.params, state.opt_state)  # the average, if kept
        result = evaluate_stage(rank_fn, params, valid_arrays, cfg.eval.batch_size,
                                mesh, cfg.eval.ks)
        if params is not state.params:  # also the raw parameters' figure, for comparison
          raw = evaluate_stage(rank_fn, state.params, valid_arrays, cfg.eval.batch_size,
                               mesh, cfg.eval.ks)
          result["raw/" + cfg.eval.select_metric] = raw[cfg.eval.select_metric]
        writer.write({"kind": "valid", "step": step, "epoch": epoch, **result})
        if update_selection(meta, result, step, cfg):
          ckpts.save_best(step, params, {"step": step, "epoch": epoch, "valid": result})
      done = last or meta["stopped_early"]
      if epoch % cfg.train.checkpoint_every_epochs == 0 or done:
        ckpts.save(step, state, train_iter, meta)
    run_steps = step - progress.start_step
    if not done and cfg.train.max_steps_this_run and run_steps >= cfg.train.max_steps_this_run:
      if ckpts.latest.latest_step() != step:  # (an epoch end has just saved it)
        ckpts.save(step, state, train_iter, meta)
      ckpts.wait()
      ckpts.close()
      print(f"stopping after {run_steps} steps (train.max_steps_this_run); "
            f"run the same command again to resume", flush=True)
      return {"interrupted_at_step": step}

  ckpts.wait()
  train_seconds = progress.elapsed()

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
