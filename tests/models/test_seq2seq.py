"""Seq2Seq: decoder causality, encoder over real items only, scoring interface, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from seqrec_jax.infer.for_user import generate_for_user
from seqrec_jax.infer.generate import GenerateConfig
from seqrec_jax.models.seq2seq import Seq2Seq
from seqrec_jax.train import loop

NUM_ITEMS, L = 30, 10


def _model(**kw):
  return Seq2Seq(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=2, num_heads=2,
                 mlp_dim=32, **kw)


def _params(model):
  # The generic loop initialises every model from a [1, L] history alone.
  return model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
                    jnp.zeros((1, L), jnp.int32))["params"]


HISTORY = jnp.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], list(range(1, 11))])


def test_init_from_history_covers_encoder_and_decoder():
  params = _params(_model(decoder_blocks=1))
  assert {"encoder_0", "encoder_1", "decoder_0", "item_embedding"} <= set(params)
  assert "decoder_1" not in params
  assert "cross_attention" in params["decoder_0"]


def test_decoder_is_causal():
  model = _model()
  params = _params(model)
  bos = NUM_ITEMS + 1
  dec = np.array([[bos, 7, 8, 9, 10], [bos, 1, 2, 3, 4]])
  changed = dec.copy()
  changed[:, 3:] = [[20, 21], [22, 23]]
  a = model.apply({"params": params}, HISTORY, dec_inputs=jnp.asarray(dec))
  b = model.apply({"params": params}, HISTORY, dec_inputs=jnp.asarray(changed))
  assert a.shape == (2, 5, 16)
  np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-6)
  assert not np.allclose(a[:, 3:], b[:, 3:])


def test_encoder_sees_the_whole_history_but_not_padding():
  model = _model()
  params = _params(model)
  encode = lambda h: model.apply({"params": params}, jnp.asarray(h), method=model.encode)
  base = np.array(HISTORY)
  earlier = base.copy()
  earlier[1, 0] = 25  # the oldest item matters
  assert not np.allclose(encode(base)[1], encode(earlier)[1])
  memory = lambda h: model.apply({"params": params}, jnp.asarray(h),
                                 method=model.encode_history)[0]
  a = memory(base)
  b = memory(np.concatenate([base[:1], base[1:]]))
  np.testing.assert_allclose(a, b)


def test_encode_is_first_decoder_step():
  model = _model()
  params = _params(model)
  state = model.apply({"params": params}, HISTORY, method=model.encode)
  bos = jnp.full((2, 3), NUM_ITEMS + 1)
  hidden = model.apply({"params": params}, HISTORY, dec_inputs=bos)
  np.testing.assert_allclose(state, hidden[:, 0], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A one-epoch smoke run on synthetic data (configs/default.py:smoke)."""
  cfg = default.get_config("smoke")
  cfg.model.name = "seq2seq"  # task.name "auto" -> seq2seq
  cfg.model.num_blocks = 1  # (compile time)
  cfg.train.num_epochs = 1
  cfg.task.future_k = 3
  workdir = tmp_path_factory.mktemp("seq2seq_run")
  return str(workdir), loop.train_and_evaluate(cfg, str(workdir))


def test_smoke_training_end_to_end(trained_run):
  _, report = trained_run
  assert report["test"]["users"] > 0
  for name in ("hr@10", "ndcg@10", "excl/ndcg@10"):
    assert np.isfinite(report["test"][name])


def test_generate_cli_restores_best_checkpoint_and_generates(trained_run):
  workdir, _ = trained_run
  out = generate_for_user(workdir, "3", GenerateConfig(steps=3, beams=2, no_repeat_history=True))
  assert out["model"] == "seq2seq" and len(out["sequences"]) == 2
  assert all(len(s["items"]) == 3 and np.isfinite(s["score"]) for s in out["sequences"])
  assert out["sequences"][0]["score"] >= out["sequences"][1]["score"]
