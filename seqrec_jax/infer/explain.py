"""Which history items drove a recommendation: three views over history positions.

For one history and the items recommended from it, the explained quantity is
f_j(history) = log p(j | history): the log-softmax of item j's score over the whole
catalogue (items 1..num_items), the quantity the models are trained on.

  * occlusion (leave-one-out): for each position p of the window, f_j(history) -
    f_j(history without the item at p). The item is deleted (the later items move up),
    so the input stays a valid history. One batched call scores all n variants for all
    recommended items.
  * gradient x input: sum over the embedding dimension of d f_j / d e_p * e_p, where e_p
    is the input embedding the model looks up at position p (taken with a Flax method
    interceptor on the item lookup's `__call__` (`ItemEmbedding`, `ItemRepresentation`:
    `is_item_lookup`), so any registered model works unchanged).
  * attention rollout (Abnar & Zuidema, 2020), only where the model has softmax
    attention (SASRec, BERT4Rec, Seq2Seq, the ELECRec discriminator): per layer the
    head-averaged attention A, with the residual as 0.5 A + 0.5 I, multiplied over the
    layers; the row of the position the state is read at. Seq2Seq: the decoder's
    head- and layer-averaged cross-attention row times the encoder's rollout. The
    weights are recomputed beside `jax.nn.dot_product_attention` while the view is
    traced (the model's own outputs are unchanged). It does not depend on the item.

Only the model's window (the latest `max_len` items, BERT4Rec: `max_len - 1`) is
explained: older items do not reach the model. Per item (`top_contributors`), the
contributions of its positions are summed and shown with their share of the total
absolute contribution (shares are signed: an item that argues against the
recommendation has a negative share).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from seqrec_jax.models import layers

METHODS = ("occlusion", "grad_input", "rollout")


@dataclasses.dataclass
class Explanation:
  """Contributions of the window's positions to each explained item."""

  targets: np.ndarray  # [K] dense ids of the explained (recommended) items
  positions: np.ndarray  # [n] index of each explained position in the full history
  items: np.ndarray  # [n] dense id at each position
  occlusion: np.ndarray  # [K, n] drop of log p(target) without the position
  grad_input: np.ndarray  # [K, n]
  rollout: np.ndarray | None  # [n] attention rollout weights (None: no softmax attention)
  log_prob: np.ndarray  # [K] log p(target | history)

  def view(self, method: str, target_row: int) -> np.ndarray:
    if method == "occlusion":
      return self.occlusion[target_row]
    if method == "grad_input":
      return self.grad_input[target_row]
    if method == "rollout":
      if self.rollout is None:
        raise ValueError("this model has no softmax attention: no rollout")
      return self.rollout
    raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")


def top_contributors(items: np.ndarray, contributions: np.ndarray, top: int = 5
                     ) -> list[tuple[int, float, float]]:
  """Per distinct item (positions summed): [(dense item, contribution, share)], largest
  contribution first; share = contribution / sum of |contribution| over items."""
  totals: dict[int, float] = {}
  for item, c in zip(items.tolist(), contributions.tolist()):
    totals[item] = totals.get(item, 0.0) + float(c)
  norm = sum(abs(v) for v in totals.values()) or 1.0
  ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
  return [(item, value, value / norm) for item, value in ranked]


# ------------------------------------------------------------------------------- helpers

def _log_probs(module, history: jax.Array, num_items: int) -> jax.Array:
  """[B, L] -> [B, V] log p over items 1..num_items (other columns -inf)."""
  state = module.encode(history).astype(jnp.float32)
  scores = state @ module.item_table().astype(jnp.float32).T
  col = jnp.arange(scores.shape[1])[None]
  scores = jnp.where((col >= 1) & (col <= num_items), scores, -jnp.inf)
  return jax.nn.log_softmax(scores, axis=-1)


def _delete_each(window: np.ndarray, n: int) -> np.ndarray:
  """window [L] with n real items -> [n, L]: row p is the window without position p."""
  out = np.zeros((n, window.size), np.int32)
  for p in range(n):
    kept = np.delete(window[:n], p)
    out[p, :kept.size] = kept
  return out


def _is_history_call(module, args, shape) -> bool:
  return (getattr(type(module), "is_item_lookup", False) and args
          and getattr(args[0], "shape", None) == shape
          and jnp.issubdtype(args[0].dtype, jnp.integer))


@functools.lru_cache(maxsize=16)
def _grad_fn(model, num_items: int, length: int):
  """jitted (params, window [1, L], targets [K]) -> (gxi [K, L], log p [K], ids [1, L]):
  gradient x input at every position of the model's own embedding lookup."""

  def f(params, window, targets, delta):
    seen = {}

    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if (context.method_name == "__call__" and "ids" not in seen
          and _is_history_call(context.module, args, window.shape)):
        seen["ids"], seen["emb"] = args[0], out
        out = out + delta.astype(out.dtype)
      return out

    with nn.intercept_methods(interceptor):
      logp = model.apply({"params": params}, window, num_items,
                         method=lambda m, h, v: _log_probs(m, h, v))
    out = logp[0, targets]
    return out, (seen["ids"], seen["emb"], out)

  def grads(params, window, targets):
    delta = jnp.zeros((1, length, _embed_width(model)), jnp.float32)
    jac, (ids, emb, logp) = jax.jacrev(lambda d: f(params, window, targets, d),
                                       has_aux=True)(delta)
    gxi = jnp.sum(jac[:, 0] * emb[0].astype(jnp.float32)[None], axis=-1)  # [K, L]
    return gxi, logp, ids

  return jax.jit(grads)


def _embed_width(model) -> int:
  width = getattr(model, "embed_dim", None)
  if width is None:
    raise ValueError(f"{type(model).__name__} has no embed_dim")
  return int(width)


@functools.lru_cache(maxsize=16)
def _occlusion_fn(model, num_items: int):
  def fn(params, windows, targets):  # windows [1 + n, L] -> [1 + n, K]
    logp = model.apply({"params": params}, windows, num_items,
                       method=lambda m, h, v: _log_probs(m, h, v))
    return logp[:, targets]
  return jax.jit(fn)


# ---- attention rollout ------------------------------------------------------------------

@contextlib.contextmanager
def _recording_attention(record: list):
  """While active, every `jax.nn.dot_product_attention` call also appends its
  head-averaged softmax weights [B, T, S] to `record` (its output is unchanged)."""
  original = jax.nn.dot_product_attention

  def wrapped(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False,
              query_seq_lengths=None, key_value_seq_lengths=None, **kw):
    out = original(query, key, value, bias=bias, mask=mask, scale=scale, is_causal=is_causal,
                   query_seq_lengths=query_seq_lengths,
                   key_value_seq_lengths=key_value_seq_lengths, **kw)
    q, k = query.astype(jnp.float32), key.astype(jnp.float32)
    s = scale if scale is not None else 1.0 / np.sqrt(q.shape[-1])
    logits = jnp.einsum("btnh,bsnh->bnts", q, k) * s  # [B, N, T, S]
    t, sk = logits.shape[2], logits.shape[3]
    allowed = jnp.ones(logits.shape, jnp.bool_)
    if is_causal:
      allowed &= jnp.tril(jnp.ones((t, sk), jnp.bool_))[None, None]
    if mask is not None:
      allowed &= jnp.broadcast_to(mask, logits.shape)
    if key_value_seq_lengths is not None:
      allowed &= (jnp.arange(sk)[None, None, None, :]
                  < key_value_seq_lengths[:, None, None, None])
    if bias is not None:
      logits = logits + bias
    weights = jax.nn.softmax(jnp.where(allowed, logits, -1e30), axis=-1)
    record.append(jnp.mean(weights, axis=1))  # [B, T, S]
    return out

  jax.nn.dot_product_attention = wrapped
  try:
    yield
  finally:
    jax.nn.dot_product_attention = original


@functools.lru_cache(maxsize=16)
def _rollout_fn(model, length: int):
  """jitted (params, window [1, L]) -> (rollout row [L] over the embedding call's
  positions, ids [1, L]), or None when the model runs no softmax attention."""

  def fn(params, window):
    record: list = []
    seen = {}

    def interceptor(next_fun, args, kwargs, context):
      if (context.method_name == "__call__" and "ids" not in seen
          and _is_history_call(context.module, args, window.shape)):
        seen["ids"] = args[0]
      return next_fun(*args, **kwargs)

    with _recording_attention(record), nn.intercept_methods(interceptor):
      model.apply({"params": params}, window, method=lambda m, h: m.encode(h))
    ids = seen["ids"]  # [1, L] what the model read (BERT4Rec: with the mask token)
    square = [a[0] for a in record if a.shape[1] == a.shape[2] == length]
    cross = [a[0] for a in record if a.shape[1] != a.shape[2] and a.shape[2] == length]
    if not square and not cross:
      return None
    eye = jnp.eye(length)
    rollout = eye
    for a in square:  # every layer over the history, in order
      rollout = (0.5 * a + 0.5 * eye) @ rollout
    if cross:  # encoder-decoder: the first decoder position's cross-attention
      row = jnp.mean(jnp.stack([c[0] for c in cross]), axis=0) @ rollout
    else:  # the state is read at the last real token of what the model read
      last = jnp.maximum(layers.sequence_lengths(ids)[0] - 1, 0)
      row = rollout[last]
    return row, ids

  probe = jax.eval_shape(fn, _abstract_params(model, length),
                         jax.ShapeDtypeStruct((1, length), jnp.int32))
  return None if probe is None else jax.jit(fn)


def _abstract_params(model, length: int):
  boxed = jax.eval_shape(lambda r: model.init({"params": r, "dropout": r},
                                              jnp.zeros((1, length), jnp.int32))["params"],
                         jax.random.PRNGKey(0))
  return nn.meta.unbox(boxed)


def _to_history(values: np.ndarray, ids: np.ndarray, window: np.ndarray, n: int,
                num_items: int) -> np.ndarray:
  """Values over the model's embedding-call positions -> over the window's n positions.

  Every model reads a suffix of the window in order (BERT4Rec a full window without its
  oldest item, plus its mask token): its real item tokens are matched to the last ones
  of the window; window positions the model did not read get 0.
  """
  real = np.flatnonzero((ids >= 1) & (ids <= num_items))
  out = np.zeros(n, np.float32)
  if real.size > n or not np.array_equal(ids[real], window[n - real.size:n]):
    raise RuntimeError("the model's input is not a suffix of the history; cannot map "
                       "its positions")
  out[n - real.size:] = values[real]
  return out


def explain(model, params: Any, history: np.ndarray, targets: np.ndarray, num_items: int,
            max_len: int, methods: tuple[str, ...] = METHODS) -> Explanation:
  """Explains why `targets` (dense ids, e.g. the recommended items) follow `history`
  (the user's whole dense history, oldest first) under `model`."""
  history = np.asarray(history, np.int32)
  targets = np.asarray(targets, np.int32)
  window = np.zeros(max_len, np.int32)
  kept = history[-max_len:]
  window[:kept.size] = kept
  n = int(kept.size)
  first = history.size - n  # index of window[0] in the full history
  k = targets.size
  occ = np.zeros((k, n), np.float32)
  gxi = np.zeros((k, n), np.float32)
  roll = None
  jt = jnp.asarray(targets)
  variants = np.concatenate([window[None], _delete_each(window, n)], axis=0)
  logp = np.asarray(_occlusion_fn(model, num_items)(params, jnp.asarray(variants), jt))
  if "occlusion" in methods:
    occ = (logp[:1] - logp[1:]).T  # [K, n]
  if "grad_input" in methods:
    g, _, ids = _grad_fn(model, num_items, max_len)(params, jnp.asarray(window[None]), jt)
    g, ids = np.asarray(g), np.asarray(ids)[0]
    gxi = np.stack([_to_history(g[i], ids, window, n, num_items) for i in range(k)]) if k else gxi
  if "rollout" in methods:
    try:
      fn = _rollout_fn(model, max_len)
      if fn is not None:
        row, ids = fn(params, jnp.asarray(window[None]))
        roll = _to_history(np.asarray(row), np.asarray(ids)[0], window, n, num_items)
    except (jax.errors.UnexpectedTracerError, jax.errors.JAXTypeError, TypeError,
            ValueError) as e:  # blocks under nn.scan / remat: weights stay inside the scan
      logging.warning("attention rollout unavailable for this model (%s): %s",
                      type(e).__name__, str(e).splitlines()[0][:200])
      roll = None
  return Explanation(targets=targets, positions=np.arange(first, history.size),
                     items=window[:n].copy(), occlusion=occ, grad_input=gxi, rollout=roll,
                     log_prob=logp[0])
