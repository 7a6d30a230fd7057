"""HSTU against the paper's equations: one layer and the relative bias checked against a
plain numpy reference on small shapes; causality, padding, packing and the cosine /
temperature scores of the whole model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqrec_jax.models.hstu import HSTU, HSTULayer, RelativeBias, time_bucket


def np_layer_norm(x, eps=1e-6):
  mu = x.mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)


def silu(x):
  return x / (1.0 + np.exp(-x))


def test_one_layer_matches_the_equations():
  b, n, d, h, dqk, dv = 2, 5, 8, 2, 3, 4
  rng = np.random.default_rng(0)
  x = rng.normal(size=(b, n, d)).astype(np.float32)
  bias = rng.normal(size=(b, n, n)).astype(np.float32) * 0.1
  mask = np.tril(np.ones((n, n), bool))[None, None] & (np.arange(n) < np.array([[5], [3]])
                                                       )[:, None, None, :]
  layer = HSTULayer(num_heads=h, qk_dim=dqk, v_dim=dv, max_len=n, dropout=0.0)
  params = nn.meta.unbox(layer.init(jax.random.PRNGKey(1), x, mask, bias, False)["params"])
  params = jax.tree.map(lambda p: p + 0.05 * rng.normal(size=p.shape).astype(np.float32),
                        params)  # a non-trivial output bias too
  got = np.asarray(layer.apply({"params": params}, x, mask, bias, False))

  w_uvqk = np.asarray(params["uvqk"]["kernel"])
  w_o, b_o = np.asarray(params["output"]["kernel"]), np.asarray(params["output"]["bias"])
  uvqk = silu(np_layer_norm(x) @ w_uvqk)
  u, v, q, k = np.split(uvqk, [h * dv, 2 * h * dv, 2 * h * dv + h * dqk], axis=-1)
  want = np.empty_like(x)
  for bi in range(b):
    av = np.zeros((n, h * dv), np.float32)
    for head in range(h):
      qh = q[bi][:, head * dqk:(head + 1) * dqk]
      kh = k[bi][:, head * dqk:(head + 1) * dqk]
      vh = v[bi][:, head * dv:(head + 1) * dv]
      a = silu(qh @ kh.T + bias[bi]) / n * mask[bi, 0]  # pointwise, no softmax, / N
      av[:, head * dv:(head + 1) * dv] = a @ vh
    want[bi] = x[bi] + (u[bi] * np_layer_norm(av)) @ w_o + b_o  # U-gating, residual
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_relative_position_and_time_bias():
  n = 4
  mod = RelativeBias(max_len=n, time_buckets=10)
  pos = jnp.arange(n)[None]
  times = jnp.array([[0, 10, 10, 1000]])
  params = mod.init(jax.random.PRNGKey(0), pos, times)["params"]
  w, w_t = np.asarray(params["position_bias"]), np.asarray(params["time_bias"])
  got = np.asarray(mod.apply({"params": params}, pos, times))[0]
  t = np.array([0, 10, 10, 1000])
  nxt = np.array([10, 10, 1000, 1000])  # the next item's time; the last repeats its own
  for i in range(n):
    for j in range(n):
      bucket = min(int(np.floor(np.log(max(abs(nxt[i] - t[j]), 1)) / 0.301)), 10)
      np.testing.assert_allclose(got[i, j], w[j - i + n - 1] + w_t[bucket], rtol=1e-6)
  assert int(time_bucket(jnp.array(0), 10)) == 0 and int(time_bucket(jnp.array(10**9), 10)) == 10


def _model(**kw):
  return HSTU(num_items=20, max_len=6, embed_dim=16, num_blocks=2, num_heads=2, dropout=0.0,
              emb_dropout=0.0, **kw)


def test_causal_padding_invariant_and_cosine_scores():
  model = _model()
  ids = jnp.array([[3, 4, 5, 6, 0, 0]])
  params = model.init(jax.random.PRNGKey(0), ids)["params"]
  h = np.asarray(model.apply({"params": params}, ids))
  changed = np.asarray(model.apply({"params": params}, ids.at[0, 3].set(9)))
  np.testing.assert_allclose(h[0, :3], changed[0, :3], rtol=1e-5, atol=1e-6)  # causal
  assert not np.allclose(h[0, 3], changed[0, 3])
  longer_pad = jnp.array([[3, 4, 5, 0, 0, 0]])
  np.testing.assert_allclose(model.apply({"params": params}, longer_pad, method=model.encode),
                             h[:, 2], rtol=1e-5, atol=1e-6)  # padding after is ignored
  state = model.apply({"params": params}, ids, method=model.encode)
  table = model.apply({"params": params}, method=lambda m: m.item_table())
  scores = np.asarray(state @ table.T)
  assert np.all(np.abs(scores) <= 1 / 0.05 + 1e-3)  # cosine / temperature
  np.testing.assert_allclose(np.linalg.norm(np.asarray(table)[1:], axis=-1), 1.0, rtol=1e-5)


def test_packed_rows_equal_unpacked():
  model = _model()
  a, b = [3, 4, 5], [7, 8]
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 6), jnp.int32))["params"]
  packed = jnp.array([a + b + [0]])
  seg = jnp.array([[1, 1, 1, 2, 2, 0]])
  pos = jnp.array([[0, 1, 2, 0, 1, 0]])
  hp = np.asarray(model.apply({"params": params}, packed, segment_ids=seg, positions=pos))
  ha = np.asarray(model.apply({"params": params}, jnp.array([a + [0, 0, 0]])))
  hb = np.asarray(model.apply({"params": params}, jnp.array([b + [0, 0, 0, 0]])))
  np.testing.assert_allclose(hp[0, :3], ha[0, :3], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(hp[0, 3:5], hb[0, :2], rtol=1e-5, atol=1e-5)


def test_generation_state_matches_encode():
  model = _model()
  history = jnp.array([[3, 4, 5, 0, 0, 0]])
  params = model.init(jax.random.PRNGKey(0), history)["params"]
  state, cache = model.apply({"params": params}, history, 2, method=model.prefill)
  np.testing.assert_allclose(state, model.apply({"params": params}, history, method=model.encode),
                             rtol=1e-5, atol=1e-6)
  step, _ = model.apply({"params": params}, jnp.array([9]), cache, method=model.decode_step)
  want = model.apply({"params": params}, jnp.array([[3, 4, 5, 9, 0, 0]]), method=model.encode)
  np.testing.assert_allclose(step, want, rtol=1e-5, atol=1e-6)
