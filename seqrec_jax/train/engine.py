"""The one training engine: every objective's data, restore, epochs, evaluation,
best-on-validation selection, checkpoints, preemption, early stop, time slicing and
the final test-once report.

An objective (`OBJECTIVES`, e.g. "mle" in `train/mle.py`, "adversarial" in
`train/adversarial.py`) is a builder `build(cfg, split, mesh, workdir) -> Objective`:
its sharded state, a pure jitted step and how to read the recommender out of the state.
Everything else is here, once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from seqrec_jax import config as config_lib
from seqrec_jax import evaluation, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import LeaveOneOut, check_evaluable, split_for
from seqrec_jax.data.load import load_dataset
from seqrec_jax.registry import Registry
from seqrec_jax import checkpoint
from seqrec_jax.train import setup as setup_lib
from seqrec_jax.train.state import abstract_state
from seqrec_jax.writers import MetricWriter

OBJECTIVES: Registry = Registry("objective")


class NonFiniteLossError(FloatingPointError):
  pass


@dataclasses.dataclass
class Objective:
  """What an objective plugs into the engine."""

  state: Any  # the full train state (a pytree), on `state_sh`
  state_sh: Any
  step: Callable[[Any, dict], tuple[Any, dict]]  # jitted (state, batch) -> (state, metrics)
  source: pipeline.TrainSequences  # what one epoch iterates
  example_fn: Callable  # sequence -> example (the Grain map)
  steps_per_epoch: int
  total_steps: int
  num_epochs: int
  eval_every_epochs: int
  patience: int  # evaluations without improvement before stopping; 0 = never
  rank_model: Any  # the recommender module (scoring interface)
  rank_params_sh: Any
  # state -> (params to evaluate and keep as best, raw params to log beside them or None)
  eval_params: Callable[[Any], tuple[Any, Any]]
  # (state, host metrics of a step) -> the numbers of the train record
  log_fields: Callable[[Any, dict], dict]
  log_line: Callable[[dict], str]  # the console text of a train record (after epoch/step)
  data_seed: int = 0
  group_batches: int = 0  # train.length_grouping
  chunk: Callable | None = None  # device path: (state, n) -> (state, metrics [n] each)
  on_fresh_start: Callable[[Any], Any] | None = None  # e.g. load the pre-trained generator
  # state -> state at each epoch end, before validation (text_finetune: recompute the
  # item table from the encoder layers being trained)
  on_epoch_end: Callable[[Any], Any] | None = None
  evaluate_at_start: bool = False  # the starting point is a candidate too (GAN)
  phase: str = ""  # the "phase" of every metrics record ("" = none)
  report_extra: dict = dataclasses.field(default_factory=dict)


def fmt_time(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def git_revision() -> str:
  """The code revision (short hash, "+dirty" when the work tree has changes), or ""."""
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  try:
    rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ""
  return f"{rev}+dirty" if rev and dirty else rev


def machine_info() -> dict:
  """Where a run ran: backend, device kind and count, CPUs, jax version, host."""
  dev = jax.devices()[0]
  return {"backend": jax.default_backend(), "device_kind": dev.device_kind,
          "device_count": jax.device_count(), "process_count": jax.process_count(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__, "host": platform.node()}


def check_finite(loss: float, grad_norm: float, step: int, workdir: str) -> None:
  """The NaN/Inf guard: stops the run before a bad state can be checkpointed."""
  if not (np.isfinite(loss) and np.isfinite(grad_norm)):
    raise NonFiniteLossError(
        f"loss is {loss} (grad_norm {grad_norm}) at step {step}; stopping. Lower "
        f"config.optim.lr or use config.model.dtype='float32'. The last good checkpoint is "
        f"in {workdir}/checkpoints.")


def chunk_row(stacked: dict, first_step: int) -> tuple[dict, int]:
  """The metrics of a device-path chunk ([n] each) to report: the first non-finite
  step's if any (for the NaN guard), else the last. -> (row, its step number)."""
  bad = ~(np.isfinite(stacked["loss"]) & np.isfinite(stacked["grad_norm"]))  # [n]
  row = int(np.argmax(bad)) if bad.any() else bad.size - 1
  return {k: v[row] for k, v in stacked.items()}, first_step + row + 1


class Selection:
  """Best-on-validation bookkeeping and early stopping (its state is checkpointed)."""

  def __init__(self, cfg, patience: int, meta: dict | None = None):
    self.metric = cfg.eval.select_metric
    self.key = ("excl/" if cfg.eval.exclude_seen else "") + self.metric
    self.patience = patience
    self.meta = meta or {"best_value": -math.inf, "best_step": -1, "bad_evals": 0,
                         "stopped_early": False}

  def update(self, result: dict, step: int) -> bool:
    """True when `result` is the new best; logs the validation line."""
    value = result[self.key]
    improved = value > self.meta["best_value"]
    if improved:
      self.meta.update(best_value=value, best_step=step, bad_evals=0)
    else:
      self.meta["bad_evals"] += 1
    m = self.metric
    raw = f" (raw params {result['raw/' + m]:.4f})" if "raw/" + m in result else ""
    logging.info("valid step %d: %s %.4f%s hr@10 %.4f (exclude_seen %s %.4f)%s", step, m,
                 result[m], raw, result.get("hr@10", float("nan")), m, result["excl/" + m],
                 "  *best*" if improved else "")
    if self.patience and self.meta["bad_evals"] >= self.patience:
      self.meta["stopped_early"] = True
      logging.info("early stop: no improvement in %d evaluations", self.patience)
    return improved


class Preemption:
  """SIGTERM / SIGINT set a flag; the engine finishes the step in flight, checkpoints
  and returns. A second SIGINT raises KeyboardInterrupt (force quit)."""

  def __init__(self):
    self.signal: int | None = None
    self._previous: dict = {}

  def _handle(self, signum, frame):
    del frame
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal = signum
    logging.warning("received %s: finishing the current step, then checkpointing",
                    signal.Signals(signum).name)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def requested(self, sync: bool) -> bool:
    """Whether a stop was asked. Multi-process runs decide together, at `sync` points
    only (all-gathered), so no process stops alone."""
    return _agree(self.signal is not None, sync)


def _agree(flag: bool, sync: bool) -> bool:
  """`flag` on one process; across processes: any process's flag, decided at sync points."""
  if jax.process_count() == 1:
    return flag
  if not sync:
    return False
  return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


class Saver:
  """Latest checkpoints: never the same step twice in a run; per epoch and per seconds."""

  def __init__(self, ckpts: checkpoint.Checkpoints, every_secs: float, last_step: int):
    self.ckpts, self.every_secs = ckpts, every_secs
    self.last_step, self.last_time = last_step, time.time()

  def save(self, step: int, state: Any, data_iter: Any, meta: dict) -> None:
    if step == self.last_step:
      return
    self.ckpts.save(step, state, data_iter, meta)
    self.last_step, self.last_time = step, time.time()

  def due(self, sync: bool) -> bool:
    """`train.checkpoint_every_secs` has passed since the last save."""
    self.ckpts.check()  # a failed background save stops the run now, not at the end
    return self.every_secs > 0 and _agree(time.time() - self.last_time >= self.every_secs, sync)


def _trim_metrics(workdir: str, step: int) -> None:
  """On resume: drop the records a killed run wrote after the checkpoint at `step`, so
  metrics.jsonl never holds a step twice."""
  path = os.path.join(workdir, "metrics.jsonl")
  if jax.process_index() != 0 or not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut by the kill
      if record.get("kind") != "test" and record.get("step", 0) <= step:
        kept.append(json.dumps(record))
  with open(path + ".tmp", "w") as f:
    f.write("".join(k + "\n" for k in kept))
  os.replace(path + ".tmp", path)


def load_split(cfg) -> tuple[Any, LeaveOneOut]:
  """The configured dataset and its leave-one-out split, with the cleaning report logged."""
  t0 = time.time()
  dataset = load_dataset(cfg.data)
  split = split_for(cfg.data, dataset, cfg.model.get("time_features", ""))
  check_evaluable(split, config_lib.data_path(cfg.data, "path") or f"data.format={cfg.data.format}")
  logging.info("data: %d users, %d items, %d interactions (%.1fs)", dataset.num_users,
               dataset.num_items, dataset.items.size, time.time() - t0)
  dropped = ("malformed", "missing_ids", "below_min_rating", "duplicate_rows", "dedup_dropped",
             "kcore_dropped", "users_dropped")
  logging.info("data report: %s (cache %s)", ", ".join(
      f"{k}: {dataset.report.get(k, 0)}" for k in dropped), dataset.report.get("cache", "off"))
  return dataset, split


def run(cfg: ml_collections.ConfigDict, workdir: str, objective: str = "mle") -> dict:
  """Trains (or resumes) `objective` in `workdir`; returns the final report, or
  {"interrupted_at_step": N, ...} when stopped early by a signal or time slice."""
  started, revision = time.time(), git_revision()  # the code this run starts with
  build = OBJECTIVES.get(objective)
  config_lib.validate(cfg)
  for check in OBJECTIVES.meta(objective).get("validate", ()):
    check(cfg)
  parallel.maybe_initialize_distributed(cfg.mesh.coordinator, cfg.mesh.num_processes,
                                        cfg.mesh.process_id)
  os.makedirs(workdir, exist_ok=True)
  lead = jax.process_index() == 0
  config_lib.save_config(cfg, workdir, write=lead)
  dataset, split = load_split(cfg)
  mesh = setup_lib.build_mesh(cfg)
  obj = build(cfg, split, mesh, workdir)
  on_device = obj.chunk is not None
  train_iter = None if on_device else iter(pipeline.train_dataset(
      obj.source, obj.example_fn, global_batch=cfg.train.batch_size, seed=obj.data_seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      group_batches=obj.group_batches))

  # ---- Resume -------------------------------------------------------------------------------
  ckpts = checkpoint.Checkpoints(workdir, cfg.train.max_to_keep)
  ckpts.ensure_writable()  # an unwritable or full folder stops the run now, not at a save
  restored = ckpts.restore_latest(abstract_state(obj.state_sh, obj.state), train_iter)
  state, meta = (obj.state, None) if restored is None else restored
  obj.state = None  # the engine owns the (donated) state from here
  start_step = int(state.step)
  if restored is not None:
    logging.info("resumed from step %d (%s/checkpoints)", start_step, workdir)
    _trim_metrics(workdir, start_step)
  elif obj.on_fresh_start is not None:
    state = obj.on_fresh_start(state)
  selection = Selection(cfg, obj.patience, meta)
  saver = Saver(ckpts, cfg.train.checkpoint_every_secs, start_step if restored else -1)
  writer = MetricWriter(workdir, enabled=lead, purge_step=start_step if restored else None)
  ctx = RunContext(cfg=cfg, workdir=workdir, obj=obj, dataset=dataset, split=split, mesh=mesh,
                   start_step=start_step, resumed=restored is not None, selection=selection,
                   saver=saver, ckpts=ckpts, writer=writer, train_iter=train_iter,
                   started=started, revision=revision)
  try:
    return _train_and_test(ctx, state)
  finally:
    writer.close()


@dataclasses.dataclass
class RunContext:
  """What `run` has set up for the epochs and the test (everything but the train state,
  which the jitted steps donate and replace). `started`: when `run` was called (records'
  "wall" counts from it: data, setup and compilation included); `revision`: the code
  revision at that moment."""

  cfg: ml_collections.ConfigDict
  workdir: str
  obj: Any
  dataset: Any
  split: LeaveOneOut
  mesh: Any
  start_step: int
  resumed: bool
  selection: Selection
  saver: Saver
  ckpts: checkpoint.Checkpoints
  writer: Any
  train_iter: Any
  started: float
  revision: str


def _train_and_test(ctx: RunContext, state: Any) -> dict:
  """The epochs, then the test of the best model (the body of `run`)."""
  cfg, workdir, obj, dataset, split, mesh = (ctx.cfg, ctx.workdir, ctx.obj, ctx.dataset,
                                             ctx.split, ctx.mesh)
  selection, saver, ckpts, writer = ctx.selection, ctx.saver, ctx.ckpts, ctx.writer
  train_iter, started, revision = ctx.train_iter, ctx.started, ctx.revision
  start_step, resumed = ctx.start_step, ctx.resumed
  lead = jax.process_index() == 0
  on_device = obj.chunk is not None
  tag = {"phase": obj.phase} if obj.phase else {}
  # top-k lists for the beyond-accuracy metrics (coverage, diversity, popularity, novelty)
  rank_fn = evaluation.jit_rank_step(obj.rank_model, dataset.num_items, obj.rank_params_sh, mesh,
                                     top_k=max(cfg.eval.ks))
  item_counts = evaluation.train_item_counts(split)
  valid_arrays = pipeline.eval_arrays(split, "valid", cfg.model.max_len)
  batch_sh = parallel.batch_sharding(mesh)

  def validate(step: int, epoch: int) -> None:
    params, raw_params = obj.eval_params(state)
    result, ranks = evaluation.evaluate_stage(rank_fn, params, valid_arrays, cfg.eval.batch_size,
                                              mesh, cfg.eval.ks, with_ranks=True,
                                              num_items=dataset.num_items,
                                              item_counts=item_counts,
                                              popularity_edges=tuple(cfg.eval.popularity_buckets),
                                              cold_items=split.cold)
    if raw_params is not None:  # the raw parameters' figure beside the average's
      raw = evaluation.evaluate_stage(rank_fn, raw_params, valid_arrays, cfg.eval.batch_size,
                                      mesh, cfg.eval.ks)
      result["raw/" + cfg.eval.select_metric] = raw[cfg.eval.select_metric]
    writer.write({"kind": "valid", **tag, "step": step, "epoch": epoch, **result,
                  "wall": time.time() - started})
    if selection.update(result, step):
      ckpts.save_best(step, params, {"step": step, "epoch": epoch, "valid": result})
      if lead:
        ranks.save(os.path.join(workdir, "ranks_valid.npz"))

  if not resumed and obj.evaluate_at_start:
    validate(0, 0)
    saver.save(0, state, train_iter, selection.meta)

  # ---- Epochs ---------------------------------------------------------------------------------
  step, total, per_epoch = start_step, obj.total_steps, obj.steps_per_epoch
  t_start = t_last = time.time()
  last_logged = step
  done = (selection.meta["stopped_early"] or step >= total
          or "budget_stop_epoch" in selection.meta)
  stop_reason = ""
  with Preemption() as preemption:
    while not done:
      prev = step
      if on_device:  # up to steps_per_dispatch steps in one dispatch, never past an epoch end
        n = min(cfg.train.steps_per_dispatch, per_epoch - step % per_epoch, total - step)
        if cfg.train.max_steps_this_run:
          n = min(n, cfg.train.max_steps_this_run - (step - start_step))
        state, step_metrics = obj.chunk(state, n)  # metrics: [n] each
        step += n
      else:
        state, step_metrics = obj.step(state, parallel.to_global(next(train_iter), batch_sh))
        step += 1
      epoch_end, last = step % per_epoch == 0, step >= total
      if epoch_end and not last and cfg.train.max_train_secs > 0:  # the training budget
        last = _agree(time.time() - t_start >= cfg.train.max_train_secs, sync=True)
        if last:
          selection.meta["budget_stop_epoch"] = step // per_epoch
          logging.info("train.max_train_secs=%g reached at epoch %d: validating and testing",
                       cfg.train.max_train_secs, step // per_epoch)
      log_now = (step // cfg.train.log_every_steps > prev // cfg.train.log_every_steps
                 or epoch_end or last)
      if log_now:
        m = jax.device_get(step_metrics)
        m, step_of_m = chunk_row(m, prev) if on_device else (m, step)
        fields = obj.log_fields(state, m)
        check_finite(fields["loss"], fields["grad_norm"], step_of_m, workdir)
        now = time.time()
        rate = (step - last_logged) / max(now - t_last, 1e-9)
        eta = (total - step) * (now - t_start) / max(step - start_step, 1)
        record = {"kind": "train", **tag, "step": step,
                  **({"epoch": step // per_epoch} if epoch_end else {}), **fields,
                  "steps_per_s": rate,
                  "step_time_s": 1.0 / max(rate, 1e-9), "time": now - t_start,
                  "wall": now - started}
        if "targets" in fields:
          record["targets_per_s"] = fields["targets"] * rate
        writer.write(record)
        logging.info("%sepoch %d/%d step %d/%d %s | %.2f steps/s | ETA %s",
                     f"{obj.phase} " if obj.phase else "", math.ceil(step / per_epoch),
                     obj.num_epochs, step, total, obj.log_line(record), rate, fmt_time(eta))
        t_last, last_logged = now, step
      if (epoch_end or last) and obj.on_epoch_end is not None:
        state = obj.on_epoch_end(state)
      if epoch_end or last:
        epoch = step // per_epoch
        if epoch % obj.eval_every_epochs == 0 or last:
          validate(step, epoch)
        done = last or selection.meta["stopped_early"]
        if epoch % cfg.train.checkpoint_every_epochs == 0 or done:
          saver.save(step, state, train_iter, selection.meta)
      if done:
        break
      if cfg.train.max_steps_this_run and step - start_step >= cfg.train.max_steps_this_run:
        stop_reason = "train.max_steps_this_run"
      elif preemption.requested(sync=log_now or epoch_end):
        stop_reason = signal.Signals(preemption.signal or signal.SIGTERM).name
      elif saver.due(sync=log_now or epoch_end):
        saver.save(step, state, train_iter, selection.meta)
      if stop_reason:
        saver.save(step, state, train_iter, selection.meta)
        ckpts.wait()
        ckpts.close()
        logging.info("stopping at step %d (%s); run the same command again to resume", step,
                     stop_reason)
        return {"interrupted_at_step": step, "reason": stop_reason, "resumed_from": start_step,
                **({"phase": obj.phase} if obj.phase else {})}
  ckpts.wait()
  train_seconds = time.time() - t_start

  # ---- Test: once, for the model picked on validation -----------------------------------------
  params, _ = obj.eval_params(state)
  best_params, best_meta = ckpts.restore_best(abstract_state(obj.rank_params_sh, params))
  test, ranks = None, None
  if cfg.train.test_at_end:  # off for sweep trials: only the winner sees the test split
    test_arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
    test, ranks = evaluation.evaluate_stage(rank_fn, best_params, test_arrays,
                                            cfg.eval.batch_size, mesh, cfg.eval.ks,
                                            with_ranks=True, num_items=dataset.num_items,
                                            item_counts=item_counts,
                                            popularity_edges=tuple(cfg.eval.popularity_buckets),
                                            cold_items=split.cold)
  report = {"best_step": best_meta["step"], "best_epoch": best_meta["epoch"],
            "valid": best_meta["valid"], "test": test, "train_seconds": train_seconds,
            "num_items": dataset.num_items, "num_users": dataset.num_users,
            "resumed_from": start_step, "git": revision, "machine": machine_info(),
            "wall_seconds": time.time() - started, **obj.report_extra,
            **({"budget_stop_epoch": selection.meta["budget_stop_epoch"]}
               if "budget_stop_epoch" in selection.meta else {})}
  if test is not None:
    writer.write({"kind": "test", **tag, "step": best_meta["step"], **test})
  if lead:
    if ranks is not None:
      ranks.save(os.path.join(workdir, "ranks_test.npz"))
    with open(os.path.join(workdir, "final.json.tmp"), "w") as f:
      json.dump(report, f, indent=2)
    os.replace(os.path.join(workdir, "final.json.tmp"), os.path.join(workdir, "final.json"))
  if test is None:
    logging.info("best valid step %d; test not evaluated (train.test_at_end=False)",
                 best_meta["step"])
  else:
    logging.info("test (best valid step %d): ndcg@10 %.4f hr@10 %.4f | exclude_seen: ndcg@10 "
                 "%.4f hr@10 %.4f", best_meta["step"], test["ndcg@10"], test["hr@10"],
                 test["excl/ndcg@10"], test["excl/hr@10"])
  ckpts.close()
  return report
