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
  apply = lambda h, **kw: model.apply({"params": params}, jnp.asarray(h), **kw)
  encode = lambda h: apply(h, method=model.encode)
  base = np.array(HISTORY)
  earlier = base.copy()
  earlier[1, 0] = 25  # the oldest item matters (the encoder is not causal)
  assert not np.allclose(encode(base)[1], encode(earlier)[1])
  # Padding does not: row 0 (3 items) gives the same memory at its real positions and
  # the same next-item state in a window of 3, 5 or 10 positions.
  memory, lengths = apply(base, method=model.encode_history)
  np.testing.assert_array_equal(lengths, [3, 10])
  for width in (3, 5):
    short_memory, short_lengths = apply(base[:1, :width], method=model.encode_history)
    assert int(short_lengths[0]) == 3
    np.testing.assert_allclose(short_memory[0, :3], memory[0, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encode(base[:1, :width])[0], encode(base)[0], rtol=1e-5,
                               atol=1e-5)
  # The decoder reads memory only up to each row's length: garbage in row 0's padded
  # memory slots changes nothing, while the same change at a real slot does.
  dec = jnp.array([[NUM_ITEMS + 1, 7, 8], [NUM_ITEMS + 1, 1, 2]])
  decode = lambda mem: model.apply({"params": params}, dec, mem, lengths, method=model.decode)
  garbage = jax.random.normal(jax.random.PRNGKey(7), memory.shape[1:]) * 3
  padded_slots = memory.at[0, 3:].set(garbage[3:])
  real_slot = memory.at[0, 1].set(garbage[1])
  np.testing.assert_allclose(decode(padded_slots), decode(memory), rtol=1e-5, atol=1e-5)
  assert not np.allclose(decode(real_slot)[0], decode(memory)[0], atol=1e-4)


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


@pytest.mark.slow  # a trained model (~30 s)
def test_smoke_training_end_to_end(trained_run):
  _, report = trained_run
  assert report["test"]["users"] > 0
  for name in ("hr@10", "ndcg@10", "excl/ndcg@10"):
    assert np.isfinite(report["test"][name])


@pytest.mark.slow  # the same trained model
def test_generate_cli_restores_best_checkpoint_and_generates(trained_run):
  workdir, _ = trained_run
  out = generate_for_user(workdir, "3", GenerateConfig(steps=3, beams=2, no_repeat_history=True))
  assert out["model"] == "seq2seq" and len(out["sequences"]) == 2
  assert all(len(s["items"]) == 3 and np.isfinite(s["score"]) for s in out["sequences"])
  assert out["sequences"][0]["score"] >= out["sequences"][1]["score"]
