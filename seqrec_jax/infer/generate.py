"""Generating future item sequences: beam search, greedy decoding and sampling
(temperature, top-k, top-p), jitted, with a KV cache.

Works for any model with the generation interface (SASRec rolled out
autoregressively, Seq2Seq's decoder):
  * `prefill(history [B, L], steps) -> (state [B, D], cache)`: runs the model once over
    the history; `cache` is a pytree whose leaves all lead with the batch axis. Leaves
    under the key "static" are the same for every beam of a user (e.g. Seq2Seq's
    projected encoder memory) and are never reordered.
  * `decode_step(tokens [B], cache) -> (state [B, D], cache)`: appends one item.
  * `prefix_state(history, generated [B, T], count, steps) -> [B, D]`: the same state
    recomputed over the whole prefix without a cache (`use_cache=False`, the reference).
Scores are `state @ item_table().T`; column 0 (padding) is never chosen and special
tokens are not in the table, so every generated id is an item in 1..num_items.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

METHODS = ("beam", "greedy", "sample")
BANNED = -1e9  # logit of an excluded item: never chosen while any allowed item is left


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
  steps: int = 5  # items to generate per sequence
  method: str = "beam"  # beam | greedy | sample
  beams: int = 4  # beam width; for "sample" the sequences drawn per user; greedy: 1
  temperature: float = 1.0  # sample only
  top_k: int = 0  # sample only: keep the k most likely items (0 = all)
  top_p: float = 1.0  # sample only: keep the smallest set with this much probability
  no_repeat_history: bool = False  # never generate an item of the history (`seen`)
  no_repeat_generated: bool = False  # never generate an item twice in one sequence
  use_cache: bool = True  # False: recompute the whole prefix at every step (reference)

  @property
  def width(self) -> int:
    return 1 if self.method == "greedy" else self.beams

  def validate(self, num_items: int) -> None:
    if self.method not in METHODS:
      raise ValueError(f"method={self.method!r}: expected one of {list(METHODS)}")
    if self.steps < 1 or self.beams < 1:
      raise ValueError(f"steps={self.steps} and beams={self.beams} must be >= 1")
    if self.method == "beam" and self.beams > num_items:
      raise ValueError(f"beams={self.beams} exceeds the {num_items} items")
    if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
      raise ValueError(f"need temperature > 0, 0 < top_p <= 1, top_k >= 0; got "
                       f"{self.temperature}, {self.top_p}, {self.top_k}")


class Generation(NamedTuple):
  """Per user, `width` sequences sorted by score (best first)."""

  items: jax.Array  # [B, W, T] int32 item ids in 1..num_items
  scores: jax.Array  # [B, W] sum of the per-step log-probabilities
  step_logprobs: jax.Array  # [B, W, T] log p(item | prefix), exclusions applied, temperature 1


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """Sets logits outside the top-k / nucleus (top-p) to -inf. logits: [N, V]."""
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]  # [N, 1]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    ordered = jnp.sort(logits, axis=-1)[:, ::-1]  # [N, V] descending
    probs = jax.nn.softmax(ordered, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly above each item
    keep = before < top_p  # the first item is always kept
    threshold = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def banned_items(seen: jax.Array, vocab: int) -> jax.Array:
  """seen: [B, S] item ids (0 = padding) -> [B, V] bool."""
  rows = jnp.arange(seen.shape[0])[:, None]
  return jnp.zeros((seen.shape[0], vocab), jnp.bool_).at[rows, seen].set(True)


def _masked(logits: jax.Array, banned: jax.Array) -> jax.Array:
  col = jnp.arange(logits.shape[-1])[None]
  logits = jnp.where(banned, BANNED, logits)
  return jnp.where(col == 0, -jnp.inf, logits)  # padding is never an item


def _reorder(cache: Any, rows: jax.Array) -> Any:
  if cache is None:
    return None
  return {k: (v if k == "static" else jax.tree.map(lambda x: x[rows], v))
          for k, v in cache.items()}


def _generate(model: nn.Module, cfg: GenerateConfig, params: Any, history: jax.Array,
              seen: jax.Array, rng: jax.Array) -> Generation:
  variables = {"params": params}
  batch, width, steps = history.shape[0], cfg.width, cfg.steps
  table = model.apply(variables, method=model.item_table).astype(jnp.float32)  # [V, D]
  vocab = table.shape[0]
  scores_of = lambda state: state.astype(jnp.float32) @ table.T  # [N, V]

  if cfg.use_cache:
    state, cache = model.apply(variables, history, steps, method=model.prefill)
  else:
    empty = jnp.zeros((batch, steps), jnp.int32)
    state = model.apply(variables, history, empty, 0, steps, method=model.prefix_state)
    cache = None
  banned = (banned_items(seen, vocab) if cfg.no_repeat_history
            else jnp.zeros((batch, vocab), jnp.bool_))
  tile = lambda x: jnp.repeat(x, width, axis=0)  # [B, ...] -> [B*W, ...], beams of a user adjacent
  n = batch * width
  carry = {
      "logits": tile(scores_of(state)),  # [N, V]
      "cache": jax.tree.map(tile, cache),
      "banned": tile(banned),  # [N, V]
      "items": jnp.zeros((n, steps), jnp.int32),  # [N, T]
      "logprobs": jnp.zeros((n, steps), jnp.float32),  # [N, T]
      # Beam scores: only the first beam is alive before the first step.
      "beam_score": jnp.where(jnp.arange(width)[None] == 0, 0.0, -jnp.inf) * jnp.ones((batch, 1)),
      "rng": rng,
  }
  history_n = tile(history)

  def choose(c: dict, t: jax.Array) -> dict:
    logits = _masked(c["logits"], c["banned"])  # [N, V]
    logp = jax.nn.log_softmax(logits, axis=-1)
    rng = c["rng"]
    rows = jnp.arange(n)
    if cfg.method == "beam":
      cand = c["beam_score"][:, :, None] + logp.reshape(batch, width, vocab)  # [B, W, V]
      beam_score, flat = jax.lax.top_k(cand.reshape(batch, width * vocab), width)  # [B, W]
      parent = flat // vocab
      rows = (jnp.arange(batch)[:, None] * width + parent).reshape(-1)  # [N]
      token = (flat % vocab).reshape(-1).astype(jnp.int32)  # [N]
    elif cfg.method == "greedy":
      token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
      beam_score = c["beam_score"]
    else:
      rng, key = jax.random.split(rng)
      sample_logits = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
      token = jax.random.categorical(key, sample_logits, axis=-1).astype(jnp.int32)
      beam_score = c["beam_score"]
    token_logp = logp[rows, token]  # [N]
    banned = c["banned"][rows]
    if cfg.no_repeat_generated:
      banned = banned.at[jnp.arange(n), token].set(True)
    return {**c, "cache": _reorder(c["cache"], rows), "banned": banned,
            "items": c["items"][rows].at[:, t].set(token),
            "logprobs": c["logprobs"][rows].at[:, t].set(token_logp),
            "beam_score": beam_score, "rng": rng, "token": token}

  def step(c: dict, t: jax.Array) -> tuple[dict, None]:
    c = choose(c, t)
    token = c.pop("token")
    if cfg.use_cache:
      state, c["cache"] = model.apply(variables, token, c["cache"], method=model.decode_step)
    else:
      state = model.apply(variables, history_n, c["items"], t + 1, steps,
                          method=model.prefix_state)
    c["logits"] = scores_of(state)
    return c, None

  carry, _ = jax.lax.scan(step, carry, jnp.arange(steps - 1))
  carry = choose(carry, jnp.asarray(steps - 1))
  items = carry["items"].reshape(batch, width, steps)
  logprobs = carry["logprobs"].reshape(batch, width, steps)
  scores = logprobs.sum(-1)  # [B, W]
  order = jnp.argsort(-scores, axis=1, stable=True)
  return Generation(items=jnp.take_along_axis(items, order[:, :, None], axis=1),
                    scores=jnp.take_along_axis(scores, order, axis=1),
                    step_logprobs=jnp.take_along_axis(logprobs, order[:, :, None], axis=1))


def make_generate_fn(model: nn.Module, cfg: GenerateConfig
                     ) -> Callable[[Any, jax.Array, jax.Array, jax.Array], Generation]:
  """A jitted `(params, history [B, L], seen [B, S], rng) -> Generation` for `model`.

  `seen` lists the items excluded by `no_repeat_history` (0 = padding; pass the
  history itself when there is nothing else); `rng` is used by "sample" only.
  """
  cfg.validate(model.num_items)
  return jax.jit(functools.partial(_generate, model, cfg))


_cached_generate_fn = functools.lru_cache(maxsize=32)(make_generate_fn)


def generate(model: nn.Module, params: Any, history: jax.Array, cfg: GenerateConfig,
             seen: jax.Array | None = None, rng: jax.Array | None = None) -> Generation:
  """Convenience around `make_generate_fn` (the jitted function is reused per model
  and config; `seen` defaults to the history, `rng` to PRNGKey(0))."""
  history = jnp.asarray(history, jnp.int32)
  seen = history if seen is None else jnp.asarray(seen, jnp.int32)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  return _cached_generate_fn(model, cfg)(params, history, seen, rng)
