"""BERT4Rec: bidirectional attention, mask-token scoring, cloze training end to end."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from seqrec_jax.models.bert4rec import BERT4Rec
from seqrec_jax.train import loop

NUM_ITEMS, L = 30, 10


def _model(**kw):
  return BERT4Rec(num_items=NUM_ITEMS, max_len=L, embed_dim=16, num_blocks=2, num_heads=2,
                  mlp_dim=32, **kw)


def _params(model):
  return model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, L), jnp.int32))["params"]


def test_shapes_and_table_excludes_mask_token():
  model = _model()
  params = _params(model)
  ids = jnp.array([[3, 4, 5, 0, 0, 0, 0, 0, 0, 0], list(range(1, 11))])
  assert model.apply({"params": params}, ids).shape == (2, L, 16)
  assert model.apply({"params": params}, ids, method=model.encode).shape == (2, 16)
  assert model.apply({"params": params}, method=model.item_table).shape == (NUM_ITEMS + 1, 16)
  table = nn.meta.unbox(params)["item_embedding"]["embedding"]
  assert table.shape[0] >= NUM_ITEMS + 2  # + mask row


def test_attention_is_bidirectional():
  model = _model()
  params = _params(model)
  ids = np.array([[3, 4, 5, 6, 7, 0, 0, 0, 0, 0]])
  later = ids.copy()
  later[0, 4] = 9  # a later item changes earlier outputs
  a = model.apply({"params": params}, jnp.asarray(ids))
  b = model.apply({"params": params}, jnp.asarray(later))
  assert not np.allclose(a[0, :4], b[0, :4])


def test_encode_appends_mask_after_last_item_and_drops_oldest_when_full():
  model = _model()
  params = _params(model)
  short = jnp.array([[3, 4, 5] + [0] * 7])
  full = jnp.arange(1, 11)[None]
  ids, pos = model.apply({"params": params}, jnp.concatenate([short, full]),
                         method=model.with_mask_appended)
  mask = NUM_ITEMS + 1
  np.testing.assert_array_equal(ids[0], [3, 4, 5, mask] + [0] * 6)
  np.testing.assert_array_equal(ids[1], list(range(2, 11)) + [mask])
  np.testing.assert_array_equal(pos, [3, 9])
  hidden = model.apply({"params": params}, ids)
  state = model.apply({"params": params}, jnp.concatenate([short, full]), method=model.encode)
  np.testing.assert_allclose(state[0], hidden[0, 3], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state[1], hidden[1, 9], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~17 s
def test_smoke_training_end_to_end(tmp_path):
  cfg = default.get_config("smoke")
  cfg.model.name = "bert4rec"  # task.name "auto" -> cloze
  cfg.model.num_blocks = 1  # (compile time)
  cfg.train.num_epochs = 1
  report = loop.train_and_evaluate(cfg, str(tmp_path))
  assert report["test"]["users"] > 0
  for name in ("hr@10", "ndcg@10", "excl/ndcg@10"):
    assert np.isfinite(report["test"][name])
