"""The adversarial train step: n_D discriminator then n_G generator updates in one pure
function of (state, batch), jitted with explicit shardings and donation like
`steps.jit_train_step`.

Batches are the causal examples of the pipeline (`batch["gan"]`: inputs/targets/weights,
[B, L]) plus, when the MLE term is on, the base model's own task example
(`batch["mle"]`). Two layouts turn them into real/generated pairs:
  * "continuation": per row a random cut c; history = the first c items, real
    continuation = the next K (`gen_len`) items. G samples K items autoregressively
    through `noisy_encode` (any model with the scoring interface). D classifies
    history ⊕ continuation; one reward per row.
  * "positions" (ELECRec): at every (or `num_positions` random) position t of the real
    sequence G proposes a replacement for the next item from its causal states; D (the
    "dot" head) scores real vs replaced item from its own causal state at t; one reward
    per position. Needs a causal generator (per-position states).

Discrete samples: "reinforce" (score function, reward log D(G(z)) minus an "ema",
"learned" or no baseline) or "gumbel" (straight-through Gumbel-softmax; D reads one-hot
rows; later steps of a continuation are conditioned on the hard ids, without gradient).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from seqrec_jax import losses, parallel
from seqrec_jax.models import layers
from seqrec_jax.models.adversarial import Discriminator, Generator
from seqrec_jax.train.state import TrainState, create_train_state

NEG = -1e9  # logit of a class that is never sampled (padding)


@dataclasses.dataclass(frozen=True)
class GANSettings:
  """The static (trace-time) settings of the step, from `config.gan`."""

  num_items: int
  estimator: str = "reinforce"  # reinforce | gumbel
  baseline: str = "ema"  # ema | learned | none
  baseline_decay: float = 0.9
  tau_start: float = 1.0
  tau_end: float = 0.2
  tau_decay_steps: int = 1000
  mle_weight: float = 0.0
  noise_dim: int = 16
  noise_std: float = 1.0
  layout: str = "continuation"  # continuation | positions
  gen_len: int = 1
  num_positions: int = 0  # positions layout: per row, 0 = all
  d_steps: int = 1
  g_steps: int = 1

  @classmethod
  def from_config(cls, gan_cfg, num_items: int) -> "GANSettings":
    names = [f.name for f in dataclasses.fields(cls) if f.name != "num_items"]
    return cls(num_items=num_items, **{n: gan_cfg[n] for n in names})


@flax.struct.dataclass
class GANState:
  """Both models with their optimizer states, plus the estimator's running values."""

  step: jax.Array  # [] int32 GAN steps done
  g: TrainState  # generator: params {"base", "noise", "value"}, optimizer state
  d: TrainState  # discriminator
  baseline: jax.Array  # [] float32 moving-average reward (baseline="ema")
  sample_counts: jax.Array  # [num_items + 1] int32 how often G sampled each item
  rng: jax.Array  # [2] uint32, folded with `step`


def create_gan_state(init_g: Callable, init_d: Callable, tx_g: optax.GradientTransformation,
                     tx_d: optax.GradientTransformation, seed: int, mesh: Mesh,
                     num_items: int, rules=parallel.DEFAULT_RULES) -> tuple[GANState, GANState]:
  """Both train states built on their shardings (abstract, then jitted init)."""
  g, g_sh = create_train_state(init_g, tx_g, seed, mesh, rules)
  d, d_sh = create_train_state(init_d, tx_d, seed + 1, mesh, rules)
  rep = parallel.replicated(mesh)

  def extra():
    return (jnp.zeros((), jnp.int32), jnp.full((), math.log(0.5), jnp.float32),
            jnp.zeros((num_items + 1,), jnp.int32),
            jax.random.fold_in(jax.random.PRNGKey(seed), 2))

  step, baseline, counts, rng = jax.jit(extra, out_shardings=(rep,) * 4)()
  state = GANState(step=step, g=g, d=d, baseline=baseline, sample_counts=counts, rng=rng)
  return state, GANState(step=rep, g=g_sh, d=d_sh, baseline=rep, sample_counts=rep, rng=rep)


# ---- data layouts ---------------------------------------------------------------------------
def temperature(s: GANSettings, step: jax.Array) -> jax.Array:
  """Gumbel temperature: tau_start decayed geometrically to tau_end over tau_decay_steps."""
  frac = jnp.minimum(step.astype(jnp.float32) / max(s.tau_decay_steps, 1), 1.0)
  return s.tau_start * (s.tau_end / s.tau_start) ** frac


def append_items(ids: jax.Array, items: jax.Array) -> jax.Array:
  """Appends items [B] after each row's last real item (dropping the oldest when full)."""
  batch, length = ids.shape
  n = layers.sequence_lengths(ids)  # [B]
  ids = jnp.where((n >= length)[:, None], jnp.roll(ids, -1, axis=1), ids)
  return ids.at[jnp.arange(batch), jnp.minimum(n, length - 1)].set(items.astype(ids.dtype))


def split_continuation(gan_batch: dict, rng: jax.Array, steps: int
                       ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(history [B, L], real continuation [B, K], its weights [B, K]) at a random cut."""
  inputs, targets, weights = gan_batch["inputs"], gan_batch["targets"], gan_batch["weights"]
  length = inputs.shape[1]
  n = jnp.sum(weights > 0, axis=-1).astype(jnp.int32)  # [B] real inputs
  hi = jnp.maximum(n - steps + 1, 1)  # last cut with a full continuation
  cut = jax.random.randint(rng, n.shape, 1, hi + 1)  # [B] in 1..hi
  history = jnp.where(jnp.arange(length)[None, :] < cut[:, None], inputs, 0)  # [B, L]
  index = cut[:, None] - 1 + jnp.arange(steps)[None, :]  # [B, K] target slots
  inside = index < length
  index = jnp.minimum(index, length - 1)
  w = jnp.take_along_axis(weights, index, axis=1) * inside  # [B, K]
  real = jnp.where(w > 0, jnp.take_along_axis(targets, index, axis=1), 0)  # [B, K]
  return history, real, w.astype(jnp.float32)


def select_positions(rng: jax.Array, weights: jax.Array, count: int) -> jax.Array:
  """[B, P] positions: `count` random real ones per row (all L when count is 0)."""
  batch, length = weights.shape
  if count <= 0 or count >= length:
    return jnp.broadcast_to(jnp.arange(length)[None, :], (batch, length))
  key = jax.random.uniform(rng, weights.shape) + (weights > 0)  # real positions first
  return jax.lax.top_k(key, count)[1]


def item_logits(states: jax.Array, table: jax.Array) -> jax.Array:
  """G's logits over items; padding column never sampled. [..., D] x [V, D] -> [..., V]."""
  logits = jnp.einsum("...d,vd->...v", states.astype(jnp.float32), table.astype(jnp.float32))
  return logits.at[..., 0].set(NEG)


def sample_items(rng: jax.Array, logits: jax.Array) -> jax.Array:
  """One draw from softmax(logits) per row by inverting the CDF. [..., V] -> [...] ids.

  Needs one uniform number per row instead of `jax.random.categorical`'s V Gumbel
  numbers (4x faster on CPU for a 12k-item catalogue). Column 0 (padding, logit NEG)
  is never returned.
  """
  cdf = jnp.cumsum(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), axis=-1)  # [..., V]
  u = jax.random.uniform(rng, logits.shape[:-1] + (1,)) * cdf[..., -1:]  # [..., 1]
  return jnp.clip(jnp.sum(cdf < u, axis=-1), 1, logits.shape[-1] - 1).astype(jnp.int32)


# ---- generation and discrimination ----------------------------------------------------------
def generate(gen: Generator, g_params: Any, gan_batch: dict, rng: jax.Array, s: GANSettings,
             tau: jax.Array, soft: bool) -> dict:
  """G's samples for the batch's slots (see the module docstring).

  Returns ids [B, S] (S = K or P), onehot [B, S, V] (soft only, straight-through),
  logits [B, S, V], states [B, S, D], real [B, S], weights [B, S], and history
  [B, L] (continuation) or pos [B, P] (positions).
  """
  rng_z, rng_cut, rng_s = jax.random.split(rng, 3)
  inputs = gan_batch["inputs"]
  z = s.noise_std * jax.random.normal(rng_z, (inputs.shape[0], s.noise_dim))  # [B, Z]
  apply = lambda method, *a: gen.apply({"params": g_params}, *a, method=method)
  table = apply(Generator.item_table)  # [V, D]

  def draw(key, logits, w):
    if soft:
      y, _ = losses.gumbel_softmax_st(key, logits, tau)  # [..., V]
      return jnp.argmax(y, axis=-1), y * w[..., None]
    return sample_items(key, logits), None

  if s.layout == "continuation":
    history, real, w = split_continuation(gan_batch, rng_cut, s.gen_len)
    hist, cols = history, {"ids": [], "onehot": [], "logits": [], "states": []}
    for k in range(s.gen_len):
      state = apply(Generator.noisy_encode, hist, z)  # [B, D]
      logits = item_logits(state, table)  # [B, V]
      ids, y = draw(jax.random.fold_in(rng_s, k), logits, w[:, k])
      ids = jnp.where(w[:, k] > 0, ids, 0)
      for name, v in (("ids", ids), ("onehot", y), ("logits", logits), ("states", state)):
        cols[name].append(v)
      if k + 1 < s.gen_len:
        hist = append_items(hist, ids)  # conditioning on hard ids (no gradient path)
    out = {n: jnp.stack(v, axis=1) for n, v in cols.items() if v[0] is not None}
    out.update(history=history)
  else:
    pos = select_positions(rng_cut, gan_batch["weights"], s.num_positions)  # [B, P]
    hidden = apply(Generator.noisy_hidden, inputs, z)  # [B, L, D]
    states = jnp.take_along_axis(hidden, pos[..., None], axis=1)  # [B, P, D]
    real = jnp.take_along_axis(gan_batch["targets"], pos, axis=1)  # [B, P]
    w = jnp.take_along_axis(gan_batch["weights"], pos, axis=1).astype(jnp.float32)
    logits = item_logits(states, table)  # [B, P, V]
    ids, y = draw(rng_s, logits, w)
    out = {"ids": ids, "logits": logits, "states": states, "pos": pos}
    if y is not None:
      out["onehot"] = y
  out.update(real=real, weights=w)
  return out


def discriminate(disc: Discriminator, d_params: Any, gan_batch: dict, fakes: dict,
                 s: GANSettings, *, rng: jax.Array, train: bool, soft: bool,
                 with_real: bool = True) -> dict:
  """D's logits on real and generated data, and the weights of each.

  Continuation: one logit per row ([B]); positions: one per slot ([B, P]). A generated
  sample identical to the real one is left out of the fake loss (`fake_w`).
  """
  rngs = {"dropout": rng} if train else {}
  apply = lambda method, *a: disc.apply({"params": d_params}, *a, method=method, rngs=rngs)
  tokens = fakes["onehot"] if soft else fakes["ids"]
  w = fakes["weights"]
  if s.layout == "continuation":
    row_w = (jnp.sum(w, axis=-1) > 0).astype(jnp.float32)  # [B]
    same = jnp.all((fakes["ids"] == fakes["real"]) | (w == 0), axis=-1)  # [B]
    out = {"real_w": row_w, "fake_w": row_w * ~same, "row_w": row_w}
    history = fakes["history"]
    if with_real and not soft:  # one pass over [real; fake] rows
      both = apply(Discriminator.classify, jnp.concatenate([history, history]),
                   jnp.concatenate([fakes["real"], tokens]), jnp.concatenate([w, w]), train)
      out["real"], out["fake"] = jnp.split(both, 2)  # [B], [B]
      return out
    out["fake"] = apply(Discriminator.classify, history, tokens, w, train)
    if with_real:
      out["real"] = apply(Discriminator.classify, history, fakes["real"], w, train)
    return out
  hidden = apply(Discriminator.__call__, gan_batch["inputs"], train)  # [B, L, D]
  h = jnp.take_along_axis(hidden, fakes["pos"][..., None], axis=1)  # [B, P, D]
  out = {"fake": apply(Discriminator.score, h, tokens), "real_w": w, "row_w": w,
         "fake_w": w * (fakes["ids"] != fakes["real"])}
  if with_real:
    out["real"] = apply(Discriminator.score, h, fakes["real"])
  return out


def _wmean(x, w):
  return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1e-9)


def d_loss_fn(d_params, g_params, batch, rng, *, gen, disc, s, tau):
  """L_D on the batch and fresh samples of the current G (held fixed)."""
  rng_g, rng_d = jax.random.split(rng)
  fakes = jax.lax.stop_gradient(generate(gen, g_params, batch["gan"], rng_g, s, tau, soft=False))
  d = discriminate(disc, d_params, batch["gan"], fakes, s, rng=rng_d, train=True, soft=False)
  loss = losses.gan_discriminator_loss(d["real"], d["fake"], d["real_w"], d["fake_w"])
  return loss, {"d_loss": loss,
                "d_acc_real": _wmean((d["real"] > 0).astype(jnp.float32), d["real_w"]),
                "d_acc_fake": _wmean((d["fake"] < 0).astype(jnp.float32), d["fake_w"])}


def g_loss_fn(g_params, d_params, baseline, batch, rng, *, gen, disc, s, tau, mle_loss_fn):
  """The generator's loss for the configured estimator (+ λ MLE); D is held fixed."""
  rng_g, rng_mle = jax.random.split(rng)
  soft = s.estimator == "gumbel"
  fakes = generate(gen, g_params, batch["gan"], rng_g, s, tau, soft=soft)
  d = discriminate(disc, d_params, batch["gan"], fakes, s, rng=rng_g, train=False, soft=soft,
                   with_real=False)
  row_w = d["row_w"]
  nonsat = losses.gan_generator_loss(d["fake"], row_w)
  reward = losses.gan_reward(d["fake"])  # [B] or [B, P]
  w = fakes["weights"]
  aux = {"g_loss": nonsat, "reward": _wmean(reward, row_w),
         "entropy": _wmean(losses.categorical_entropy(fakes["logits"]), w),
         "baseline_loss": jnp.zeros(()), "ids": fakes["ids"], "slot_w": w}
  if soft:
    loss = nonsat
  else:
    logp = jnp.take_along_axis(jax.nn.log_softmax(fakes["logits"], axis=-1),
                               fakes["ids"][..., None], axis=-1)[..., 0]  # [B, S]
    if s.layout == "continuation":
      logp, states = jnp.sum(logp * w, axis=-1), fakes["states"][:, 0]  # [B], [B, D]
    else:
      states = fakes["states"]  # [B, P, D]
    if s.baseline == "learned":
      b = gen.apply({"params": g_params}, states, method=Generator.baseline)
      aux["baseline_loss"] = _wmean(jnp.square(b - reward), row_w)
    elif s.baseline == "ema":
      b = baseline
    else:
      b = jnp.zeros(())
    loss = losses.reinforce_loss(logp, reward, b, row_w) + aux["baseline_loss"]
  aux["mle_loss"] = jnp.zeros(())
  if s.mle_weight > 0:
    aux["mle_loss"], _ = mle_loss_fn(g_params["base"], batch["mle"], rng_mle)
    loss = loss + s.mle_weight * aux["mle_loss"]
  return loss, aux


def _apply_update(ts: TrainState, grads, tx: optax.GradientTransformation) -> TrainState:
  updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
  return ts.replace(step=ts.step + 1, params=optax.apply_updates(ts.params, updates),
                    opt_state=opt_state)


def _repeat(body: Callable, carry: Any, times: int) -> tuple[Any, Any]:
  """`times` updates `carry, out = body(carry, i)`; a scan (compiled once) when > 1.
  Returns the final carry and the last update's outputs."""
  if times == 1:
    return body(carry, jnp.zeros((), jnp.int32))
  carry, outs = jax.lax.scan(body, carry, jnp.arange(times))
  return carry, jax.tree.map(lambda x: x[-1], outs)


def gan_step(state: GANState, batch: dict, *, gen: Generator, disc: Discriminator,
             s: GANSettings, tx_g: optax.GradientTransformation,
             tx_d: optax.GradientTransformation, mle_loss_fn: Callable | None = None
             ) -> tuple[GANState, dict]:
  """n_D discriminator updates, then n_G generator updates, on one batch."""
  rng = jax.random.fold_in(state.rng, state.step)
  tau = temperature(s, state.step)
  d_grad = functools.partial(jax.value_and_grad(d_loss_fn, has_aux=True),
                             gen=gen, disc=disc, s=s, tau=tau)
  g_grad = functools.partial(jax.value_and_grad(g_loss_fn, has_aux=True), gen=gen, disc=disc,
                             s=s, tau=tau, mle_loss_fn=mle_loss_fn)

  def d_update(d: TrainState, i):
    (_, aux), grads = d_grad(d.params, state.g.params, batch, jax.random.fold_in(rng, i))
    return _apply_update(d, grads, tx_d), {**aux, "d_grad_norm": optax.tree.norm(grads)}

  d, d_aux = _repeat(d_update, state.d, s.d_steps)

  def g_update(carry, j):
    g, baseline, counts = carry
    (_, aux), grads = g_grad(g.params, d.params, baseline, batch,
                             jax.random.fold_in(rng, s.d_steps + j))
    if s.baseline == "ema":
      baseline = s.baseline_decay * baseline + (1.0 - s.baseline_decay) * aux["reward"]
    ids, slot_w = aux.pop("ids"), aux.pop("slot_w")
    drawn = jnp.zeros_like(counts).at[ids.reshape(-1)].add(
        (slot_w.reshape(-1) > 0).astype(counts.dtype))  # [V] this update's samples
    aux.update(g_grad_norm=optax.tree.norm(grads),
               sample_coverage=jnp.sum(drawn[1:] > 0) / s.num_items)
    return (_apply_update(g, grads, tx_g), baseline, counts + drawn), aux

  (g, baseline, counts), g_aux = _repeat(
      g_update, (state.g, state.baseline, state.sample_counts), s.g_steps)
  metrics = {**d_aux, **g_aux, "tau": tau, "baseline": baseline}
  new = state.replace(step=state.step + 1, g=g, d=d, baseline=baseline, sample_counts=counts)
  return new, metrics


def jit_gan_step(gen: Generator, disc: Discriminator, s: GANSettings,
                 tx_g: optax.GradientTransformation, tx_d: optax.GradientTransformation,
                 state_sh: GANState, mesh: Mesh, mle_loss_fn: Callable | None = None):
  """`(state, batch) -> (state, metrics)`, state donated, batch split on `data`."""
  if s.mle_weight > 0 and mle_loss_fn is None:
    raise ValueError("gan.mle_weight > 0 needs the base model's MLE loss")
  fn = functools.partial(gan_step, gen=gen, disc=disc, s=s, tx_g=tx_g, tx_d=tx_d,
                         mle_loss_fn=mle_loss_fn)
  return jax.jit(fn, in_shardings=(state_sh, parallel.batch_sharding(mesh)),
                 out_shardings=(state_sh, parallel.replicated(mesh)), donate_argnums=0)
