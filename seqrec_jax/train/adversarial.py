"""The "adversarial" objective: MLE pre-training of G, then D/G alternation.

Phase 1 is an engine run of the "mle" objective on the config's model and
`train`/`optim` settings, in `<workdir>/pretrain` (resumable there, skipped once it has
written `final.json`), or taken from `gan.pretrained_dir`. Phase 2 is an engine run of
this objective: its state holds both models and both optimizer states (`gan_steps`),
G starts from phase 1's best-on-validation parameters, and the engine does the rest
(data, checkpoints, evaluation of the recommender -- G, or D with `gan.recommender` --
at the start and every `gan.eval_every_epochs`, selection, test once).
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from seqrec_jax import config as config_lib
from seqrec_jax import models
from seqrec_jax.data import pipeline
from seqrec_jax.data.dataset import LeaveOneOut
from seqrec_jax.models.adversarial import Discriminator, Generator, build_discriminator
from seqrec_jax import checkpoint
from seqrec_jax.train import engine, optim, tasks
from seqrec_jax.train.engine import OBJECTIVES, Objective
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
  logging.info("MLE pre-training of the generator in %s", pre_dir)
  return engine.run(pretrain_config(cfg), pre_dir, "mle")


def build_models(cfg: ml_collections.ConfigDict, num_items: int
                 ) -> tuple[Any, Generator, Discriminator]:
  """(base model as ranked and pre-trained, Generator around it, Discriminator)."""
  g = cfg.gan
  gen = Generator(base=models.build_model(cfg.model, num_items), features=cfg.model.embed_dim,
                  noise_dim=g.noise_dim, noise_mode=g.noise_mode)
  return models.build_model(cfg.model, num_items), gen, build_discriminator(cfg, num_items)


def _optim_config(cfg: ml_collections.ConfigDict, lr: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict(cfg.optim.to_dict())
  o.lr, o.warmup_steps = lr, cfg.gan.warmup_steps
  o.ema_decay = 0.0  # the adversarial loop evaluates and keeps the raw parameters
  return o


def load_pretrained(state: GANState, state_sh: GANState, cfg, pre_dir: str) -> GANState:
  """G's base model <- the best-on-validation parameters of the MLE run in `pre_dir`."""
  saved = config_lib.load_config(pre_dir)
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
  logging.info("generator starts from %s/best (step %d)", pre_dir, meta["step"])
  return state.replace(g=state.g.replace(params={**state.g.params, "base": base}))


def _log_line(r: dict) -> str:
  return (f"| D loss {r['d_loss']:.4f} acc real {r['d_acc_real']:.3f} fake {r['d_acc_fake']:.3f}"
          f" | G loss {r['g_loss']:.4f} reward {r['reward']:.4f} entropy {r['entropy']:.3f} "
          f"coverage {r['coverage']:.3f}")


@OBJECTIVES.register("adversarial", validate=(config_lib.validate_gan,))
def build(cfg: ml_collections.ConfigDict, split: LeaveOneOut, mesh: Mesh,
          workdir: str) -> Objective:
  """Phase 2's state (G and D with their optimizers), jitted step and recommender."""
  pre_dir = cfg.gan.pretrained_dir or os.path.join(workdir, "pretrain")
  pretrain = pretrain_generator(cfg, pre_dir)  # finished: phase 1 ran first (`train_gan`)
  num_items = split.data.num_items
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
  if cfg.gan.recommender == "generator":
    rec_model, rec_sh, rec_params = base, state_sh.g.params["base"], lambda st: st.g.params["base"]
  else:
    rec_model, rec_sh, rec_params = disc, state_sh.d.params, lambda st: st.d.params
  window = {"counts": None}  # G's sample counts at the last log: coverage since then

  def log_fields(st: GANState, m: dict) -> dict:
    m = {k: float(v) for k, v in m.items()}
    counts = np.asarray(jax.device_get(st.sample_counts))
    prev = window["counts"] if window["counts"] is not None else np.zeros_like(counts)
    window["counts"] = counts
    return {**m, "loss": m["d_loss"] + m["g_loss"],
            "grad_norm": m["d_grad_norm"] + m["g_grad_norm"],
            "coverage": float(np.mean((counts - prev)[1:] > 0))}  # items G drew since last log

  return Objective(
      state=state, state_sh=state_sh,
      step=jit_gan_step(gen, disc, s, tx_g, tx_d, state_sh, mesh,
                        task.loss_fn if s.mle_weight > 0 else None),
      source=task.source, example_fn=example, steps_per_epoch=steps_per_epoch,
      total_steps=total_steps, num_epochs=cfg.gan.epochs,
      eval_every_epochs=cfg.gan.eval_every_epochs, patience=cfg.gan.patience,
      rank_model=rec_model, rank_params_sh=rec_sh,
      eval_params=lambda st: (rec_params(st), None), log_fields=log_fields, log_line=_log_line,
      data_seed=cfg.seed + 1,
      on_fresh_start=lambda st: load_pretrained(st, state_sh, cfg, pre_dir),
      evaluate_at_start=True, phase="adversarial",
      report_extra={"recommender": cfg.gan.recommender,
                    "pretrain": {"workdir": os.path.abspath(pre_dir),
                                 "best_step": pretrain["best_step"], "valid": pretrain["valid"],
                                 "test": pretrain["test"], "git": pretrain.get("git", "")}})


def train_gan(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pre-trains G (or reuses that run), then trains adversarially; returns the report
  (or the interruption of whichever phase was stopped)."""
  config_lib.validate(cfg)
  config_lib.validate_gan(cfg)
  pre_dir = cfg.gan.pretrained_dir or os.path.join(workdir, "pretrain")
  pretrain = pretrain_generator(cfg, pre_dir)
  if "interrupted_at_step" in pretrain:
    return {"pretrain": pretrain, **pretrain}
  return engine.run(cfg, workdir, "adversarial")
