"""The adversarial training loop: MLE pre-training of G, then D/G alternation.

Phase 1 is the ordinary training loop (`loop.train_and_evaluate`) on the config's model
and `train`/`optim` settings, run in `<workdir>/pretrain` (resumable there, skipped once
it has written `final.json`), or taken from `gan.pretrained_dir`. Phase 2 starts G from
that run's best-on-validation parameters and trains G and D with `gan_steps`, reusing
the loop's pieces: the Grain pipeline, `evaluate_stage`, the metrics writer, best-model
selection and the Orbax checkpoints (which hold both models and both optimizer states
plus the data iterator). The recommender (G, or D with `gan.recommender`) is evaluated
at the start and every `gan.eval_every_epochs`; the one picked on validation is tested
once at the end.
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

from seqrec_jax import config as config_lib
from seqrec_jax import models, parallel
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import leave_one_out
from seqrec_jax.data.load import load_dataset
from seqrec_jax.models.adversarial import Discriminator, Generator
from seqrec_jax.train import checkpoint, loop, optim, steps, tasks
from seqrec_jax.train import setup as setup_lib
from seqrec_jax.train.gan_steps import GANSettings, GANState, create_gan_state, jit_gan_step
from seqrec_jax.train.state import abstract_state


class GANExample:
  """Pipeline example: the causal example under "gan" (+ the task's own under "mle")."""

  def __init__(self, causal: pipeline.CausalExample, mle=None):
    self.causal, self.mle = causal, mle

  def __call__(self, seq: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    out = {"gan": self.causal(seq, rng)}
    if self.mle is not None:
      out["mle"] = self.mle(seq, rng)
    return out


def pretrain_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The MLE run of phase 1: the same config with the adversarial phase switched off."""
  pre = ml_collections.ConfigDict(cfg.to_dict())
  pre.gan.enabled = False
  pre.gan.pretrained_dir = ""
  return pre


def pretrain_generator(cfg: ml_collections.ConfigDict, pre_dir: str) -> dict:
  """Phase 1's report: read when the run finished, else trained (or resumed) now."""
  final = os.path.join(pre_dir, "final.json")
  if os.path.exists(final):
    with open(final) as f:
      return json.load(f)
  if cfg.gan.pretrained_dir:
    raise FileNotFoundError(f"config.gan.pretrained_dir={cfg.gan.pretrained_dir!r} has no "
                            "final.json: it is not a finished training run")
  print(f"MLE pre-training of the generator in {pre_dir}", flush=True)
  return loop.train_and_evaluate(pretrain_config(cfg), pre_dir)


def build_models(cfg: ml_collections.ConfigDict, num_items: int
                 ) -> tuple[Any, Generator, Discriminator]:
  """(base model as ranked and pre-trained, Generator around it, Discriminator)."""
  g = cfg.gan
  gen = Generator(base=models.build_model(cfg.model, num_items), features=cfg.model.embed_dim,
                  noise_dim=g.noise_dim, noise_mode=g.noise_mode)
  disc = Discriminator(
      num_items=num_items, max_len=cfg.model.max_len + g.gen_len, head=g.d_head,
      embed_dim=g.d_embed_dim, num_blocks=g.d_num_blocks, num_heads=g.d_num_heads,
      mlp_dim=g.d_mlp_dim, dropout=g.d_dropout, dtype=models.compute_dtype(cfg.model.dtype),
      attention_impl=cfg.model.attention_impl or None)
  return models.build_model(cfg.model, num_items), gen, disc


def _optim_config(cfg: ml_collections.ConfigDict, lr: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict(cfg.optim.to_dict())
  o.lr, o.warmup_steps = lr, cfg.gan.warmup_steps
  o.ema_decay = 0.0  # the adversarial loop evaluates and keeps the raw parameters
  return o


def load_pretrained(state: GANState, state_sh: GANState, cfg, pre_dir: str) -> GANState:
  """G's base model <- the best-on-validation parameters of the MLE run in `pre_dir`."""
  saved = loop.load_config(pre_dir)
  for section in ("model", "data"):
    if saved[section].to_dict() != cfg[section].to_dict():
      raise ValueError(f"the MLE run in {pre_dir} has a different config.{section}; "
                       "pre-train with the same model and data")
  ckpts = checkpoint.Checkpoints(pre_dir)
  try:
    base, meta = ckpts.restore_best(abstract_state(state_sh.g.params["base"],
                                                   state.g.params["base"]))
  finally:
    ckpts.close()
  print(f"generator starts from {pre_dir}/best (step {meta['step']})", flush=True)
  return state.replace(g=state.g.replace(params={**state.g.params, "base": base}))


def _log_line(step: int, total: int, steps_per_epoch: int, epochs: int, m: dict,
              coverage: float, rate: float, eta: float) -> str:
  return (f"adv epoch {math.ceil(step / steps_per_epoch)}/{epochs} step {step}/{total} | "
          f"D loss {m['d_loss']:.4f} acc real {m['d_acc_real']:.3f} fake {m['d_acc_fake']:.3f} | "
          f"G loss {m['g_loss']:.4f} reward {m['reward']:.4f} entropy {m['entropy']:.3f} "
          f"coverage {coverage:.3f} | {rate:.2f} steps/s ETA {loop._fmt_time(eta)}")


def train_gan(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pre-trains G (or reuses that run), then trains adversarially; returns the report."""
  config_lib.validate(cfg)
  config_lib.validate_gan(cfg)
  parallel.maybe_initialize_distributed(cfg.mesh.coordinator, cfg.mesh.num_processes,
                                        cfg.mesh.process_id)
  os.makedirs(workdir, exist_ok=True)
  loop.save_config(cfg, workdir)

  # ---- Phase 1: MLE pre-training of G ------------------------------------------------------
  pre_dir = cfg.gan.pretrained_dir or os.path.join(workdir, "pretrain")
  pretrain = pretrain_generator(cfg, pre_dir)
  if "interrupted_at_step" in pretrain:
    return {"pretrain": pretrain, **pretrain}
  writer = loop.MetricsWriter(workdir)

  # ---- Phase 2: data, models, optimizers, state ----------------------------------------------
  dataset = load_dataset(cfg.data)
  split = leave_one_out(dataset, cfg.data.leave_last_k)
  num_items = dataset.num_items
  mesh = setup_lib.build_mesh(cfg)
  base, gen, disc = build_models(cfg, num_items)
  task = tasks.build_task(cfg, base, split)
  s = GANSettings.from_config(cfg.gan, num_items)
  steps_per_epoch = max(1, len(task.source) // cfg.train.batch_size)
  total_steps = steps_per_epoch * cfg.gan.epochs
  tx_g = optim.build_optimizer(_optim_config(cfg, cfg.gan.g_lr), total_steps * s.g_steps)
  tx_d = optim.build_optimizer(_optim_config(cfg, cfg.gan.d_lr), total_steps * s.d_steps)
  dummy = np.zeros((1, cfg.model.max_len), np.int32)
  rngs = lambda r: {"params": r, "dropout": r}
  init_g = lambda r: gen.init(rngs(r), dummy, method=Generator.init_all)["params"]
  init_d = lambda r: disc.init(rngs(r), dummy, method=Discriminator.init_all)["params"]
  state, state_sh = create_gan_state(init_g, init_d, tx_g, tx_d, cfg.seed, mesh, num_items)

  example = GANExample(pipeline.CausalExample(cfg.model.max_len, cfg.task.crop),
                       task.example_fn if s.mle_weight > 0 else None)
  train_iter = iter(pipeline.train_dataset(
      task.source, example, global_batch=cfg.train.batch_size, seed=cfg.seed + 1,
      process_index=jax.process_index(), process_count=jax.process_count()))

  ckpts = checkpoint.Checkpoints(workdir, cfg.train.max_to_keep)
  state, meta, resumed = loop.restore_or_start(ckpts, state, state_sh, train_iter)
  if resumed:
    print(f"resumed adversarial training from step {int(state.step)}", flush=True)
  else:
    state = load_pretrained(state, state_sh, cfg, pre_dir)

  gan_step = jit_gan_step(gen, disc, s, tx_g, tx_d, state_sh, mesh,
                          task.loss_fn if s.mle_weight > 0 else None)
  if cfg.gan.recommender == "generator":
    rec_model, rec_sh, rec_params = base, state_sh.g.params["base"], lambda st: st.g.params["base"]
  else:
    rec_model, rec_sh, rec_params = disc, state_sh.d.params, lambda st: st.d.params
  rank_fn = steps.jit_rank_step(rec_model, num_items, rec_sh, mesh)
  valid_arrays = pipeline.eval_arrays(split, "valid", cfg.model.max_len)
  select_cfg = ml_collections.ConfigDict({"eval": cfg.eval.to_dict(),
                                          "train": {"patience": cfg.gan.patience}})
  batch_sh = parallel.batch_sharding(mesh)

  def validate(step: int, epoch: int) -> None:
    result = loop.evaluate_stage(rank_fn, rec_params(state), valid_arrays, cfg.eval.batch_size,
                                 mesh, cfg.eval.ks)
    writer.write({"kind": "valid", "phase": "adversarial", "step": step, "epoch": epoch,
                  **result})
    if loop.update_selection(meta, result, step, select_cfg):
      ckpts.save_best(step, rec_params(state), {"step": step, "epoch": epoch, "valid": result})

  if not resumed:  # the starting point is a candidate too (the pre-trained G)
    validate(0, 0)
    ckpts.save(0, state, train_iter, meta)

  # ---- Adversarial loop ---------------------------------------------------------------------
  step = int(state.step)
  start_step, start_time = step, time.time()
  window_time, window_step = start_time, step
  window_counts = np.asarray(jax.device_get(state.sample_counts))
  max_steps = cfg.train.get("max_steps_this_run", 0)
  done = meta["stopped_early"] or step >= total_steps
  while not done:
    batch = parallel.to_global(next(train_iter), batch_sh)
    state, step_metrics = gan_step(state, batch)
    step += 1
    epoch_end = step % steps_per_epoch == 0
    last = step >= total_steps
    if step % cfg.train.log_every_steps == 0 or epoch_end or last:
      m = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
      loop.check_finite({"loss": m["d_loss"] + m["g_loss"],
                         "grad_norm": m["d_grad_norm"] + m["g_grad_norm"]}, step, workdir)
      counts = np.asarray(jax.device_get(state.sample_counts))
      coverage = float(np.mean((counts - window_counts)[1:] > 0))  # items G drew since last log
      now = time.time()
      rate = (step - window_step) / max(now - window_time, 1e-9)
      eta = (total_steps - step) * (now - start_time) / max(step - start_step, 1)
      print(_log_line(step, total_steps, steps_per_epoch, cfg.gan.epochs, m, coverage, rate, eta),
            flush=True)
      writer.write({"kind": "train", "phase": "adversarial", "step": step, **m,
                    "coverage": coverage, "steps_per_s": rate, "time": now - start_time})
      window_time, window_step, window_counts = now, step, counts
    if epoch_end or last:
      epoch = step // steps_per_epoch
      if epoch % cfg.gan.eval_every_epochs == 0 or last:
        validate(step, epoch)
      done = last or meta["stopped_early"]
      if epoch % cfg.train.checkpoint_every_epochs == 0 or done:
        ckpts.save(step, state, train_iter, meta)
    if not done and max_steps and step - start_step >= max_steps:
      ckpts.save(step, state, train_iter, meta)
      ckpts.wait()
      ckpts.close()
      print(f"stopping after {step - start_step} adversarial steps (train.max_steps_this_run); "
            "run the same command again to resume", flush=True)
      return {"interrupted_at_step": step, "phase": "adversarial"}

  ckpts.wait()
  train_seconds = time.time() - start_time

  # ---- Test: once, for the recommender picked on validation ----------------------------------
  best_params, best_meta = ckpts.restore_best(abstract_state(rec_sh, rec_params(state)))
  test_arrays = pipeline.eval_arrays(split, "test", cfg.model.max_len)
  test = loop.evaluate_stage(rank_fn, best_params, test_arrays, cfg.eval.batch_size, mesh,
                             cfg.eval.ks)
  report = {"recommender": cfg.gan.recommender, "best_step": best_meta["step"],
            "best_epoch": best_meta["epoch"], "valid": best_meta["valid"], "test": test,
            "train_seconds": train_seconds, "num_items": num_items,
            "num_users": dataset.num_users,
            "pretrain": {"workdir": os.path.abspath(pre_dir), "best_step": pretrain["best_step"],
                         "valid": pretrain["valid"], "test": pretrain["test"]}}
  writer.write({"kind": "test", "phase": "adversarial", "step": best_meta["step"], **test})
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "final.json"), "w") as f:
      json.dump(report, f, indent=2)
  print(f"test ({cfg.gan.recommender}, best valid adversarial step {best_meta['step']}): "
        f"ndcg@10 {test['ndcg@10']:.4f} hr@10 {test['hr@10']:.4f} | exclude_seen: ndcg@10 "
        f"{test['excl/ndcg@10']:.4f} hr@10 {test['excl/hr@10']:.4f} | MLE pre-training: "
        f"ndcg@10 {pretrain['test']['ndcg@10']:.4f}", flush=True)
  ckpts.close()
  return report
