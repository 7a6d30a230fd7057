"""GRU4Rec: the GRU equations, causality, the scoring and generation interfaces, and a
trained run through the engine that beats random on planted sequences."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from seqrec_jax import models
from seqrec_jax.infer.generate import GenerateConfig, make_generate_fn
from seqrec_jax.models.gru4rec import GRU4Rec
from seqrec_jax.train import loop

V, L, D = 30, 8, 16


def _model(**kw):
  return GRU4Rec(num_items=V, max_len=L, embed_dim=D, num_blocks=2, dropout=0.0,
                 emb_dropout=0.0, **kw)


def _init(model):
  ids = jnp.zeros((1, L), jnp.int32)
  return nn.meta.unbox(model.init({"params": jax.random.PRNGKey(0)}, ids)["params"])


def _history(rng, batch=4):
  lengths = rng.integers(1, L + 1, batch)
  ids = np.zeros((batch, L), np.int32)
  for b, n in enumerate(lengths):
    ids[b, :n] = rng.integers(1, V + 1, n)
  return ids


def _gru_reference(p, x):
  """Plain numpy GRU (the equations of flax.linen.GRUCell) over x [B, T, Din]."""
  sig = lambda z: 1 / (1 + np.exp(-z))
  dense = lambda name, v, bias=True: v @ np.asarray(p[name]["kernel"]) + (
      np.asarray(p[name]["bias"]) if bias else 0.0)
  h = np.zeros((x.shape[0], np.asarray(p["hr"]["kernel"]).shape[0]), np.float32)
  outs = []
  for t in range(x.shape[1]):
    xt = x[:, t]
    r = sig(dense("ir", xt) + dense("hr", h, bias=False))
    z = sig(dense("iz", xt) + dense("hz", h, bias=False))
    n = np.tanh(dense("in", xt) + r * dense("hn", h))
    h = (1 - z) * n + z * h
    outs.append(h)
  return np.stack(outs, axis=1)


def test_layers_follow_the_gru_equations():
  model = _model()
  params = _init(model)
  ids = _history(np.random.default_rng(0))
  got = model.apply({"params": params}, ids)
  emb = np.asarray(params["item_embedding"]["embedding"])[ids]
  h = _gru_reference(params["gru_0"]["cell"], emb)
  h = _gru_reference(params["gru_1"]["cell"], h)
  want = h @ np.asarray(params["out"]["kernel"]) + np.asarray(params["out"]["bias"])
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_causal_and_encode_is_the_last_real_position():
  model = _model()
  params = _init(model)
  rng = np.random.default_rng(1)
  ids = np.full((1, L), 0, np.int32)
  ids[0, :6] = rng.integers(1, V + 1, 6)
  changed = ids.copy()
  changed[0, 4] = (ids[0, 4] % V) + 1  # a different item at position 4
  a = np.asarray(model.apply({"params": params}, ids))
  b = np.asarray(model.apply({"params": params}, changed))
  np.testing.assert_allclose(a[0, :4], b[0, :4], atol=1e-6)  # the past is unchanged
  assert np.abs(a[0, 4:6] - b[0, 4:6]).max() > 1e-4  # the present and future change
  enc = np.asarray(model.apply({"params": params}, ids, method=GRU4Rec.encode))
  np.testing.assert_allclose(enc[0], a[0, 5], atol=1e-6)


def test_cached_decoding_equals_recomputation():
  model = _model()
  params = _init(model)
  ids = _history(np.random.default_rng(2))
  tokens = np.array([3, 7, 1, 9], np.int32)
  v = {"params": params}
  state, cache = model.apply(v, ids, 2, method=GRU4Rec.prefill)
  np.testing.assert_allclose(np.asarray(state),
                             np.asarray(model.apply(v, ids, method=GRU4Rec.encode)), atol=1e-5)
  state2, _ = model.apply(v, jnp.asarray(tokens), cache, method=GRU4Rec.decode_step)
  generated = np.zeros((4, 2), np.int32)
  generated[:, 0] = tokens
  ref = model.apply(v, ids, generated, 1, 2, method=GRU4Rec.prefix_state)
  np.testing.assert_allclose(np.asarray(state2), np.asarray(ref), atol=1e-5)


def test_generation_runs_with_and_without_cache():
  model = _model()
  params = _init(model)
  ids = jnp.asarray(_history(np.random.default_rng(3)))
  outs = []
  for use_cache in (True, False):
    cfg = GenerateConfig(steps=3, method="greedy", beams=1, use_cache=use_cache)
    outs.append(make_generate_fn(model, cfg)(params, ids, ids, jax.random.PRNGKey(0)))
  np.testing.assert_array_equal(np.asarray(outs[0].items), np.asarray(outs[1].items))
  assert (np.asarray(outs[0].items) >= 1).all() and (np.asarray(outs[0].items) <= V).all()


def test_registered_and_built_from_config():
  cfg = default.get_config("smoke")
  cfg.model.name = "gru4rec"
  model = models.build_model(cfg.model, 40)
  assert isinstance(model, GRU4Rec) and isinstance(model, models.ScoringModel)
  assert models.model_tasks()["gru4rec"] == ("causal",)


@pytest.mark.slow  # ~25 s; the registry-wide tests cover GRU4Rec by default
def test_smoke_run_through_the_engine_beats_random(tmp_path):
  cfg = default.get_config("smoke")
  cfg.model.name = "gru4rec"
  cfg.model.num_blocks = 1
  cfg.train.num_epochs = 6
  cfg.train.eval_every_epochs = 3
  cfg.optim.lr = 5e-3
  report = loop.train_and_evaluate(cfg, str(tmp_path))
  random_hr = 10 / report["num_items"]
  assert report["test"]["hr@10"] > 2 * random_hr, report["test"]
