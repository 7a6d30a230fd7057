"""Attention kernels: the auto choice, and cuDNN flash attention == XLA (on a GPU).

The GPU tests run only where JAX sees a GPU; tests/conftest.py picks the CPU unless
JAX_PLATFORMS is set, so run them with `JAX_PLATFORMS=cuda pytest -m gpu tests`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec_jax import config as config_lib
from seqrec_jax import models
from seqrec_jax.models.layers import resolve_attention_impl
from seqrec_jax.models.sasrec import SASRec

needs_gpu = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a GPU")


def test_auto_choice_is_xla_on_cpu():
  assert jax.default_backend() == "cpu"
  for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
    assert resolve_attention_impl("", dtype, 64) == "xla"
    assert resolve_attention_impl(None, dtype, 64) == "xla"


def test_auto_choice_rules():
  assert resolve_attention_impl("", jnp.bfloat16, 64, backend="gpu") == "cudnn"
  assert resolve_attention_impl("", jnp.float16, 128, backend="gpu") == "cudnn"
  assert resolve_attention_impl("", jnp.float32, 64, backend="gpu") == "xla"  # cuDNN: half only
  assert resolve_attention_impl("", jnp.bfloat16, 12, backend="gpu") == "xla"  # head dim % 8
  assert resolve_attention_impl("", jnp.bfloat16, 64, backend="gpu", has_mask=True) == "xla"
  assert resolve_attention_impl("", jnp.bfloat16, 64, backend="tpu") == "xla"
  assert resolve_attention_impl("cudnn", jnp.float32, 64, backend="cpu") == "cudnn"  # explicit
  with pytest.raises(ValueError, match="attention_impl"):
    resolve_attention_impl("flash", jnp.bfloat16, 64)


def test_auto_model_runs_on_cpu_in_bf16():
  cfg = config_lib.base_config()
  cfg.model.update(max_len=12, embed_dim=16, num_blocks=1, mlp_dim=32, dtype="bfloat16")
  model = models.build_model(cfg.model, num_items=20)
  ids = jnp.array([[1, 2, 3, 0] + [0] * 8])
  params = model.init({"params": jax.random.PRNGKey(0)}, ids)["params"]
  assert model.apply({"params": params}, ids).dtype == jnp.bfloat16


def _qkv(batch=4, length=200, heads=2, head_dim=64, dtype=jnp.bfloat16):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  shape = (batch, length, heads, head_dim)
  return [jax.random.normal(k, shape, jnp.float32).astype(dtype) for k in keys]


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("kind", ["causal", "padded"])
def test_cudnn_equals_xla_forward_and_grad(kind):
  q, k, v = _qkv()
  lengths = jnp.array([200, 150, 37, 1], jnp.int32)
  kw = ({"is_causal": True} if kind == "causal" else {"key_value_seq_lengths": lengths})

  def loss(impl, q, k, v):
    out = jax.nn.dot_product_attention(q, k, v, implementation=impl, **kw)
    return jnp.sum(out.astype(jnp.float32) ** 2), out

  for_impl = lambda impl: jax.jit(jax.value_and_grad(
      lambda q, k, v: loss(impl, q, k, v), argnums=(0, 1, 2), has_aux=True))(q, k, v)
  (l_x, out_x), g_x = for_impl("xla")
  (l_c, out_c), g_c = for_impl("cudnn")
  f32 = lambda a: np.asarray(a.astype(jnp.float32))
  np.testing.assert_allclose(f32(out_c), f32(out_x), atol=2e-2, rtol=2e-2)
  np.testing.assert_allclose(float(l_c), float(l_x), rtol=1e-2)
  for a, b in zip(g_c, g_x):
    scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))
    np.testing.assert_allclose(f32(a), f32(b), atol=3e-2 * scale, rtol=5e-2)


@pytest.mark.gpu
@needs_gpu
def test_sasrec_cudnn_equals_xla_in_bf16():
  kw = dict(num_items=500, max_len=64, embed_dim=64, num_blocks=2, num_heads=1, mlp_dim=128,
            dtype=jnp.bfloat16)
  xla, cudnn = SASRec(attention_impl="xla", **kw), SASRec(attention_impl="cudnn", **kw)
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 501, size=(8, 64)).astype(np.int32)
  ids[:, 40:] = 0  # right padding
  ids[3, 5:] = 0
  params = xla.init({"params": jax.random.PRNGKey(1)}, ids)["params"]
  assert resolve_attention_impl("", jnp.bfloat16, 64) == "cudnn"  # the auto choice here
  h_x = jax.jit(lambda p: xla.apply({"params": p}, ids))(params).astype(jnp.float32)
  h_c = jax.jit(lambda p: cudnn.apply({"params": p}, ids))(params).astype(jnp.float32)
  real = ids != 0
  np.testing.assert_allclose(np.asarray(h_c)[real], np.asarray(h_x)[real], atol=5e-2, rtol=5e-2)
