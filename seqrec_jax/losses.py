"""Next-item losses over the shared item table.

Registered by name (config `loss.name`):
  * "ce": `full_softmax_ce`, softmax over the whole catalogue at every target position;
    with `vocab_chunk > 0` the catalogue is streamed in chunks, so the [positions, V]
    logits are never all in memory;
  * "sampled_softmax": `sampled_softmax`, the target against `num_negatives` sampled
    negatives with the logQ correction;
  * "bce": `sampled_bce`, SASRec's original objective (one positive, sampled negatives);
  * "gbce": gSASRec's generalised BCE (`gbce_beta`).
The sampled losses draw negatives from the registered samplers (`samplers.py`), per
position or shared by the batch (`loss.share_negatives`), and never build [B, L, V].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from seqrec_jax import metrics, samplers
from seqrec_jax.registry import Registry

# Next-item losses by name (config `loss.name`). Each entry is called as
# `fn(hidden [B, L, D], table [V, D], targets [B, L], weights [B, L], rng, loss_cfg,
#    denominator, seen)` and returns the scalar loss (`next_item_loss`).
LOSSES: Registry = Registry("loss")


def _flatten(hidden, targets, weights):
  d = hidden.shape[-1]
  return hidden.reshape(-1, d), targets.reshape(-1), weights.reshape(-1).astype(jnp.float32)


# A masked logit: finite, so a chunk whose items are all masked cannot make NaN (inf - inf).
_MASKED = -1e30


def _logsumexp_chunked(h: jax.Array, items: jax.Array, chunk: int,
                       keep: jax.Array | None = None) -> jax.Array:
  """logsumexp over items of h @ items.T without materialising it. h: [N, D]; items: [I, D];
  keep: [I] bool, the items that enter the sum (None: all)."""
  num_items, d = items.shape
  num_chunks = -(-num_items // chunk)
  pad = num_chunks * chunk - num_items
  blocks = jnp.pad(items, ((0, pad), (0, 0))).reshape(num_chunks, chunk, d)
  valid = jnp.arange(num_chunks * chunk) < num_items
  if keep is not None:
    valid &= jnp.pad(keep, (0, pad))
  valid = valid.reshape(num_chunks, chunk)

  @jax.checkpoint
  def body(carry, xs):
    running_max, running_sum = carry
    block, ok = xs
    logits = jnp.dot(h, block.T, preferred_element_type=jnp.float32)  # [N, chunk]
    logits = jnp.where(ok[None], logits, _MASKED)
    new_max = jnp.maximum(running_max, jnp.max(logits, axis=-1))
    running_sum = (running_sum * jnp.exp(running_max - new_max)
                   + jnp.sum(jnp.exp(logits - new_max[:, None]), axis=-1))
    return (new_max, running_sum), None

  n = h.shape[0]
  init = (jnp.full((n,), -jnp.inf, jnp.float32), jnp.zeros((n,), jnp.float32))
  (m, s), _ = jax.lax.scan(body, init, (blocks, valid))
  return m + jnp.log(s)


def _weighted_mean(values: jax.Array, w: jax.Array, denominator: jax.Array | None) -> jax.Array:
  """sum(values * w) / sum(w), or / `denominator` when given (a fixed count, so every
  target weighs the same whatever the batch's own count: length-grouped batches)."""
  total = jnp.sum(values * w)
  return total / (jnp.maximum(jnp.sum(w), 1.0) if denominator is None else denominator)


def prefix_seen_mask(inputs: jax.Array, targets: jax.Array) -> jax.Array:
  """[B, L] inputs, [B, L] targets -> [B, L, L] bool: query t, key s is an item already
  in the prefix (s <= t), counted once (its first occurrence), and not t's target.

  These are the negatives of the next-item prediction at t that the user has seen."""
  pos = jnp.arange(inputs.shape[1])
  first = metrics.first_occurrence(inputs)  # [B, s]
  in_prefix = pos[:, None] >= pos[None, :]  # [t, s]
  not_target = inputs[:, None, :] != targets[:, :, None]  # [B, t, s]
  return in_prefix[None] & first[:, None, :] & not_target


def full_softmax_ce(hidden: jax.Array, table: jax.Array, targets: jax.Array,
                    weights: jax.Array, vocab_chunk: int = 0,
                    denominator: jax.Array | None = None,
                    seen: jax.Array | None = None, seen_margin: float = 0.0,
                    never_negative: jax.Array | None = None) -> jax.Array:
  """Mean cross-entropy of the target item against all items 1..V-1 (less the
  `never_negative` ones: [V] bool, e.g. cold items held out of training).

  With `seen_margin` m > 0, the negatives in `seen` (items the user already had at that
  position, `prefix_seen_mask`) enter the softmax with logit + m: an additive margin
  that pushes already-seen items harder below the target during training. Scores at
  inference are unchanged (still the plain dot product over the whole catalogue).

  Args:
    hidden: [B, L, D] states; table: [V, D] with row 0 = padding (never a class);
    targets: [B, L] ids (anything where weight is 0); weights: [B, L] 0/1;
    denominator: [] optional fixed normaliser instead of sum(weights);
    seen: [B, L] ids whose prefix at each position is the seen set (the inputs).
  """
  h, t, w = _flatten(hidden, targets, weights)
  items = table[1:]  # [V-1, D]
  keep = None if never_negative is None else ~jnp.asarray(never_negative)[1:]  # [V-1]
  if vocab_chunk and vocab_chunk < items.shape[0]:
    lse = _logsumexp_chunked(h, items.astype(h.dtype), vocab_chunk, keep)
  else:
    logits = jnp.dot(h, items.T.astype(h.dtype), preferred_element_type=jnp.float32)
    if keep is not None:
      logits = jnp.where(keep[None], logits, _MASKED)
    lse = jax.nn.logsumexp(logits, axis=-1)  # [N]
  if seen is not None and seen_margin > 0:
    b, l, _ = hidden.shape
    seen_logits = jnp.einsum("btd,bsd->bts", hidden.astype(jnp.float32),
                             table[seen].astype(jnp.float32))  # [B, L, L]
    mask = prefix_seen_mask(seen, targets)
    # log(sum_all e^z + sum_seen (e^(z+m) - e^z)) = lse + log1p((e^m - 1) sum_seen e^(z-lse))
    extra = jnp.sum(jnp.where(mask, jnp.exp(seen_logits - lse.reshape(b, l, 1)), 0.0), axis=-1)
    lse = lse + jnp.log1p(jnp.expm1(seen_margin) * extra.reshape(-1))
  target_logit = jnp.sum(h.astype(jnp.float32) * table[t].astype(jnp.float32), axis=-1)
  nll = lse - target_logit
  return _weighted_mean(nll, w, denominator)


def _negatives(rng: jax.Array, t: jax.Array, w: jax.Array, vocab: int,
               num: int, sampler: str, shared: bool, stats) -> samplers.Negatives:
  ctx = samplers.SampleContext(vocab=vocab, log_freq=getattr(stats, "log_freq", None),
                               targets=t, weights=w, alpha=getattr(stats, "alpha", 1.0))
  return samplers.SAMPLERS.get(sampler)(rng, ctx, num, shared)


def _negative_ok(ids: jax.Array, t: jax.Array, stats) -> jax.Array:
  """[N or 1, K] bool: the drawn negatives that count, i.e. not the position's own
  target (an accidental hit) and not a `never_negative` item (a cold item)."""
  ids = ids if ids.ndim == 2 else ids[None]
  ok = ids != t[:, None]
  never = getattr(stats, "never_negative", None)
  if never is not None:
    ok &= ~jnp.asarray(never)[ids]
  return ok


def _candidate_logits(h32: jax.Array, table: jax.Array, ids: jax.Array) -> jax.Array:
  """Scores of candidate items: ids [K] (shared) -> [N, K] via one matmul; ids [N, K]
  (per position) -> [N, K] via a gather. Never [N, V]."""
  if ids.ndim == 1:
    return jnp.dot(h32, table[ids].astype(jnp.float32).T)  # [N, K]
  return jnp.einsum("nd,nkd->nk", h32, table[ids].astype(jnp.float32))


def sampled_bce(hidden: jax.Array, table: jax.Array, targets: jax.Array, weights: jax.Array,
                rng: jax.Array, num_negatives: int = 1,
                denominator: jax.Array | None = None, sampler: str = "uniform",
                shared: bool = False, stats=None, beta: float = 1.0) -> jax.Array:
  """Binary cross-entropy of the target vs sampled negatives (SASRec); with `beta` < 1
  the positive term is -beta * log sigmoid(s+) (gBCE, `gbce`). A negative that hits
  the target (or a `stats.never_negative` item) is masked out rather than redrawn."""
  h, t, w = _flatten(hidden, targets, weights)
  negs = _negatives(rng, t, w, table.shape[0], num_negatives, sampler, shared, stats)
  h32 = h.astype(jnp.float32)
  pos = jnp.sum(h32 * table[t].astype(jnp.float32), axis=-1)  # [N]
  neg = _candidate_logits(h32, table, negs.ids)  # [N, K]
  neg_w = _negative_ok(negs.ids, t, stats).astype(jnp.float32)
  loss = -beta * jax.nn.log_sigmoid(pos) - jnp.sum(neg_w * jax.nn.log_sigmoid(-neg), axis=-1)
  return _weighted_mean(loss, w, denominator)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
  """gSASRec's calibration exponent (Petrov & Macdonald, 2023): with sampling rate
  alpha = k / (|I| - 1), beta = alpha * (t * (1 - 1/alpha) + 1/alpha); t = 0 gives
  beta = 1 (plain BCE), t = 1 gives beta = alpha."""
  alpha = num_negatives / max(num_items - 1, 1)
  return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def sampled_softmax(hidden: jax.Array, table: jax.Array, targets: jax.Array,
                    weights: jax.Array, rng: jax.Array, num_negatives: int,
                    denominator: jax.Array | None = None, sampler: str = "uniform",
                    shared: bool = True, stats=None, logq: bool = True) -> jax.Array:
  """Softmax cross-entropy of the target against sampled negatives, with the logQ
  correction: negative j enters with logit s_j - log(expected draws of j), so that
  exp(s_pos) + sum_k exp(s_k - log E[n_k]) estimates the full partition function
  without bias (accidental hits of the positive are masked). Builds [N, K] logits,
  never [N, V]. With the "all" sampler (every item once) it equals full CE.

  hidden [B, L, D], table [V, D], targets/weights [B, L] -> scalar.
  """
  h, t, w = _flatten(hidden, targets, weights)
  negs = _negatives(rng, t, w, table.shape[0], num_negatives, sampler, shared, stats)
  h32 = h.astype(jnp.float32)
  pos = jnp.sum(h32 * table[t].astype(jnp.float32), axis=-1)  # [N]
  neg = _candidate_logits(h32, table, negs.ids)  # [N, K]
  log_count = negs.log_count if negs.log_count.ndim == 2 else negs.log_count[None]
  if logq:
    neg = neg - log_count
  # the positive (and a never_negative item) is never a negative
  neg = jnp.where(_negative_ok(negs.ids, t, stats), neg, -jnp.inf)
  lse = jnp.logaddexp(pos, jax.nn.logsumexp(neg, axis=-1))  # [N]
  return _weighted_mean(lse - pos, w, denominator)


@dataclasses.dataclass(frozen=True)
class LossStats:
  """Training statistics a sampled loss may need: `log_freq` [V] log share of each
  item among the training targets (`samplers.item_log_frequencies`), `alpha` the
  popularity sampler's exponent, `never_negative` [V] bool the items no loss may use as
  a negative (the cold items of `data.cold_items_frac`: held out of training entirely,
  so not pushed down either)."""

  log_freq: Any = None
  alpha: float = 1.0
  never_negative: Any = None


@LOSSES.register("ce")
def _ce_entry(hidden, table, targets, weights, rng, loss_cfg, denominator=None, seen=None,
              stats=None):
  """Full-softmax CE (`loss.vocab_chunk` streams the catalogue; `loss.seen_margin`)."""
  del rng
  return full_softmax_ce(hidden, table, targets, weights, loss_cfg.vocab_chunk, denominator,
                         seen, loss_cfg.seen_margin, getattr(stats, "never_negative", None))


def _shared(loss_cfg) -> bool:
  return loss_cfg.share_negatives == "batch"


@LOSSES.register("bce")
def _bce_entry(hidden, table, targets, weights, rng, loss_cfg, denominator=None, seen=None,
               stats=None):
  """Sampled BCE with `loss.num_negatives` negatives from `loss.sampler`."""
  del seen
  return sampled_bce(hidden, table, targets, weights, rng, loss_cfg.num_negatives, denominator,
                     loss_cfg.sampler, _shared(loss_cfg), stats)


@LOSSES.register("gbce")
def _gbce_entry(hidden, table, targets, weights, rng, loss_cfg, denominator=None, seen=None,
                stats=None):
  """gBCE (gSASRec): BCE whose positive term is raised to beta (`loss.gbce_t`)."""
  del seen
  beta = gbce_beta(loss_cfg.num_negatives, table.shape[0] - 1, loss_cfg.gbce_t)
  return sampled_bce(hidden, table, targets, weights, rng, loss_cfg.num_negatives, denominator,
                     loss_cfg.sampler, _shared(loss_cfg), stats, beta=beta)


@LOSSES.register("sampled_softmax")
def _sampled_softmax_entry(hidden, table, targets, weights, rng, loss_cfg, denominator=None,
                           seen=None, stats=None):
  """Sampled softmax with logQ correction (`loss.num_negatives`, `loss.sampler`,
  `loss.share_negatives`, `loss.logq`)."""
  del seen
  return sampled_softmax(hidden, table, targets, weights, rng, loss_cfg.num_negatives,
                         denominator, loss_cfg.sampler, _shared(loss_cfg), stats, loss_cfg.logq)


def next_item_loss(hidden: jax.Array, table: jax.Array, targets: jax.Array,
                   weights: jax.Array, rng: jax.Array, loss_cfg,
                   denominator: jax.Array | None = None,
                   seen: jax.Array | None = None, stats=None) -> jax.Array:
  """The registered loss `loss_cfg.name`. `seen` [B, L]: the causal inputs (for the
  losses that use what the user has seen, e.g. `loss.seen_margin`); `stats`: training
  statistics the samplers use (`LossStats`)."""
  return LOSSES.get(loss_cfg.name)(hidden, table, targets, weights, rng, loss_cfg,
                                   denominator, seen, stats=stats)


# ---- Adversarial (GAN) objectives and discrete-sample estimators --------------------------
# D outputs a logit; P(real) = sigmoid(logit), so log D = log_sigmoid(logit) and
# log(1 - D) = log_sigmoid(-logit). All means are weighted (weights 0/1 or counts).


def _wmean(x: jax.Array, w: jax.Array) -> jax.Array:
  w = w.astype(jnp.float32)
  return jnp.sum(x.astype(jnp.float32) * w) / jnp.maximum(jnp.sum(w), 1e-9)


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                           real_weights: jax.Array, fake_weights: jax.Array) -> jax.Array:
  """L_D = -(E_x[log D(x)] + E_z[log(1 - D(G(z)))]). logits: any shape, weights alike."""
  return (-_wmean(jax.nn.log_sigmoid(real_logits), real_weights)
          - _wmean(jax.nn.log_sigmoid(-fake_logits), fake_weights))


def gan_generator_loss(fake_logits: jax.Array, weights: jax.Array) -> jax.Array:
  """Non-saturating L_G = -E_z[log D(G(z))]."""
  return -_wmean(jax.nn.log_sigmoid(fake_logits), weights)


def gan_reward(fake_logits: jax.Array) -> jax.Array:
  """Per-sample REINFORCE reward log D(G(z)) (no gradient: D is held fixed)."""
  return jax.lax.stop_gradient(jax.nn.log_sigmoid(fake_logits))


def reinforce_loss(log_probs: jax.Array, rewards: jax.Array, baseline: jax.Array,
                   weights: jax.Array) -> jax.Array:
  """Score-function surrogate: its gradient is an unbiased estimate of -grad E[reward].

  loss = -E[(r - b) * log p(sample)] with r and b held constant, so
  grad = -E[(r - b) grad log p] = -grad E_p[r] for any b that does not depend on the
  sample. log_probs, rewards, weights: [N]; baseline: [N] or scalar.
  """
  advantage = jax.lax.stop_gradient(rewards - baseline)
  return -_wmean(advantage * log_probs, weights)


def gumbel_softmax_st(rng: jax.Array, logits: jax.Array, tau: jax.Array | float
                      ) -> tuple[jax.Array, jax.Array]:
  """Straight-through Gumbel-softmax over the last axis.

  Returns (y, soft): `y` is exactly one-hot in the forward pass (the argmax of
  logits + Gumbel noise, a sample of softmax(logits)) and has the gradient of
  `soft = softmax((logits + g) / tau)` in the backward pass. logits: [..., V]
  (masked classes at a large negative value are never drawn).
  """
  logits = logits.astype(jnp.float32)
  g = jax.random.gumbel(rng, logits.shape, jnp.float32)
  soft = jax.nn.softmax((logits + g) / tau, axis=-1)  # [..., V]
  hard = jax.nn.one_hot(jnp.argmax(logits + g, axis=-1), logits.shape[-1], dtype=soft.dtype)
  return hard + (soft - jax.lax.stop_gradient(soft)), soft  # forward exactly `hard`


def categorical_entropy(logits: jax.Array) -> jax.Array:
  """Entropy (nats) of softmax(logits) over the last axis. [..., V] -> [...]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
