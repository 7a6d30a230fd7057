"""SASRec: shapes, causality, scoring interface, bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax.models.sasrec import SASRec


def _model(**kw):
  return SASRec(num_items=30, max_len=10, embed_dim=16, num_blocks=2, num_heads=2,
                mlp_dim=32, **kw)


def _params(model):
  return model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 10), jnp.int32))["params"]


def test_shapes_and_scoring_interface():
  model = _model()
  params = _params(model)
  ids = jnp.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
  hidden = model.apply({"params": params}, ids)
  assert hidden.shape == (2, 10, 16)
  state = model.apply({"params": params}, ids, method=model.encode)
  assert state.shape == (2, 16)
  np.testing.assert_allclose(state[0], hidden[0, 2], rtol=1e-6)  # after the last real item
  np.testing.assert_allclose(state[1], hidden[1, 9], rtol=1e-6)
  table = model.apply({"params": params}, method=model.item_table)
  assert table.shape == (31, 16)


@pytest.mark.parametrize("input_in_state", [True, False])
def test_outputs_at_t_do_not_depend_on_later_items(input_in_state):
  model = _model(input_in_state=input_in_state)
  params = _params(model)
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 31, size=(4, 10))
  changed = ids.copy()
  changed[:, 6:] = rng.integers(1, 31, size=(4, 4))
  a = model.apply({"params": params}, jnp.asarray(ids))
  b = model.apply({"params": params}, jnp.asarray(changed))
  np.testing.assert_allclose(a[:, :6], b[:, :6], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[:, 6:], b[:, 6:])  # and later positions do see them


def test_dropout_only_in_training():
  ids = jnp.arange(1, 11)[None]
  noisy, clean = _model(dropout=0.5, emb_dropout=0.5), _model(dropout=0.0, emb_dropout=0.0)
  params = _params(noisy)  # dropout adds no parameters
  key = lambda k: {"dropout": jax.random.PRNGKey(k)}
  # Evaluation ignores dropout, even when a dropout key is passed: the 0.5 model scores
  # exactly like the 0.0 model.
  evaluated = noisy.apply({"params": params}, ids, rngs=key(1))
  np.testing.assert_allclose(evaluated, clean.apply({"params": params}, ids),
                             rtol=1e-6, atol=1e-6)
  # Training applies it: fresh masks per key, and different from evaluation...
  a = noisy.apply({"params": params}, ids, train=True, rngs=key(1))
  b = noisy.apply({"params": params}, ids, train=True, rngs=key(2))
  assert not np.allclose(a, b)
  assert not np.allclose(a, evaluated)
  # ...while with rate 0 training is evaluation (dropout is the only difference).
  np.testing.assert_allclose(clean.apply({"params": params}, ids, train=True, rngs=key(1)),
                             evaluated, rtol=1e-6, atol=1e-6)


def test_encode_ignores_right_padding_and_window_width():
  """A history's state is the same in any window wide enough to hold it: what the
  length-grouped batches (cut to their longest row) and the eval windows rely on."""
  wide = SASRec(num_items=30, max_len=16, embed_dim=16, num_blocks=2, num_heads=2, mlp_dim=32)
  params = wide.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 16), jnp.int32))["params"]
  rng = np.random.default_rng(1)
  lengths = np.array([1, 3, 6, 6])
  ids = np.zeros((4, 16), np.int32)
  for r, n in enumerate(lengths):
    ids[r, :n] = rng.integers(1, 31, n)
  hidden = lambda x: wide.apply({"params": params}, jnp.asarray(x))
  encode = lambda x: wide.apply({"params": params}, jnp.asarray(x), method=wide.encode)
  full, cut = hidden(ids), hidden(ids[:, :6])  # [4, 16, D], [4, 6, D]
  for r, n in enumerate(lengths):
    np.testing.assert_allclose(full[r, :n], cut[r, :n], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(encode(ids), encode(ids[:, :6]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(encode(ids), full[np.arange(4), lengths - 1], rtol=1e-6)
  # and the state does depend on the items, so the equalities above are not vacuous
  other = ids.copy()
  other[:, 0] = np.where(ids[:, 0] == 1, 2, 1)
  assert not np.isclose(encode(ids), encode(other), rtol=1e-3, atol=1e-4).all(-1).any()


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_low_precision_compute_close_to_float32(dtype):
  m32, mlow = _model(), _model(dtype=dtype)
  params = _params(m32)
  ids = jnp.arange(1, 11)[None]
  a = m32.apply({"params": params}, ids)
  b = mlow.apply({"params": params}, ids)
  assert b.dtype == dtype
  np.testing.assert_allclose(np.asarray(b, np.float32), a, atol=0.1)


def test_state_without_input_residual_is_the_norm_of_what_the_blocks_added():
  ids = jnp.array([[3, 4, 5, 6, 0, 0, 0, 0, 0, 0]])
  full, blocks_only = _model(), _model(input_in_state=False)
  params = _params(full)  # the option adds no parameters
  a = full.apply({"params": params}, ids)
  b = blocks_only.apply({"params": params}, ids)
  assert not np.allclose(a, b)

  def parts(module, ids):  # the residual stream before and after the blocks
    x0 = module._embed(ids)
    x = x0
    for block in module.blocks:
      x = block(x, train=False, is_causal=True)
    return x0, x, module.final_norm(x - x0)

  _, _, expected = full.apply({"params": params}, ids, method=parts)
  np.testing.assert_allclose(b, expected, rtol=1e-5, atol=1e-5)


def test_output_bias_adds_a_learned_per_item_score_through_the_shared_interface():
  ids = jnp.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
  plain, biased = _model(input_in_state=False), _model(input_in_state=False, output_bias=True)
  params = _params(biased)
  assert params["item_bias"].unbox().shape == (31,)
  bias = jax.random.normal(jax.random.PRNGKey(5), (31,))
  params["item_bias"] = params["item_bias"].replace_boxed(bias)
  shared = {k: v for k, v in params.items() if k != "item_bias"}  # the plain model's params

  def scores(model, p):
    state = model.apply({"params": p}, ids, method=model.encode)
    return state @ model.apply({"params": p}, method=model.item_table).T  # [B, V]

  np.testing.assert_allclose(scores(biased, params), scores(plain, shared) + bias[None],
                             rtol=1e-5, atol=1e-5)
  assert biased.apply({"params": params}, ids).shape == (2, 10, 17)  # [B, L, D + 1]
